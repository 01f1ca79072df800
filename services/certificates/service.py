"""Certificates service entrypoints."""

from __future__ import annotations

from functools import partial

from nameko.events import event_handler

from credence_common.consumers import consume
from credence_common.contracts.events import CandidateQualifiedV1, PaymentSucceededV1
from credence_common.db import Database
from credence_common.entrypoints import HealthCheck, rpc
from credence_common.metrics import Metrics
from credence_common.outbox_relay import OutboxRelay
from credence_common.settings import Settings
from services.certificates import domain, usecases
from services.certificates.models import OutboxEvent, ProcessedEvent


class CertificatesService(HealthCheck):
    name = "certificates"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    settings = Settings()

    @rpc
    def certificates_for_candidate(self, candidate_id: str) -> dict:
        with self.db.transaction() as session:
            return usecases.certificates_for_candidate(session, candidate_id).model_dump(mode="json")

    @event_handler("scoring", CandidateQualifiedV1.event_type, requeue_on_error=True)
    def handle_candidate_qualified(self, message: dict) -> None:
        fee_fen = int(self.settings.get("CERTIFICATE_FEE_FEN", domain.CERTIFICATE_FEE_FEN))
        consume(self, message, CandidateQualifiedV1, ProcessedEvent,
                partial(usecases.create_for_qualified_candidate, fee_fen=fee_fen))

    @event_handler("payments", PaymentSucceededV1.event_type, requeue_on_error=True)
    def handle_payment_succeeded(self, message: dict) -> None:
        consume(self, message, PaymentSucceededV1, ProcessedEvent, usecases.issue_on_payment)
