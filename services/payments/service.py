"""Payments service entrypoints."""

from __future__ import annotations

from nameko.events import event_handler

from credence_common.actors import require_role
from credence_common.consumers import consume
from credence_common.contracts.events import CertificateAwaitingPaymentV1
from credence_common.db import Database
from credence_common.entrypoints import HealthCheck, rpc
from credence_common.errors import Forbidden, InvalidInput
from credence_common.metrics import Metrics
from credence_common.outbox_relay import OutboxRelay
from credence_common.settings import Settings
from services.payments import usecases
from services.payments.models import OutboxEvent, ProcessedEvent

PAYER_KINDS = ("candidate", "institution")


class PaymentsService(HealthCheck):
    name = "payments"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    settings = Settings()

    @rpc
    def orders_for_payer(self, actor: dict, payer_kind: str, payer_id: str) -> dict:
        who = require_role(actor, "candidate", "institution", "staff")
        if who.role != "staff" and (who.role != payer_kind or who.subject != payer_id):
            raise Forbidden("forbidden", "You may only see your own payment orders.")
        if payer_kind not in PAYER_KINDS:
            raise InvalidInput("invalid_payer_kind", f"payer_kind must be one of {', '.join(PAYER_KINDS)}.")
        with self.db.transaction() as session:
            return usecases.orders_for_payer(session, payer_kind, payer_id).model_dump(mode="json")

    @rpc
    def handle_sandbox_callback(self, raw_body: str, signature: str | None) -> dict:
        secret = self.settings["PAYMENT_CALLBACK_SECRET"]
        with self.db.transaction() as session:
            ack = usecases.handle_sandbox_callback(session, secret, raw_body.encode("utf-8"), signature)
            return ack.model_dump(mode="json")

    @event_handler("certificates", CertificateAwaitingPaymentV1.event_type, requeue_on_error=True)
    def handle_certificate_awaiting_payment(self, message: dict) -> None:
        consume(self, message, CertificateAwaitingPaymentV1, ProcessedEvent,
                usecases.create_certificate_fee_order)
