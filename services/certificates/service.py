"""Certificates service entrypoints."""

from __future__ import annotations

from functools import partial

from nameko.events import event_handler
from nameko.extensions import DependencyProvider

from credence_common.actors import require_self_or_staff
from credence_common.consumers import consume
from credence_common.contracts.events import CandidateQualifiedV1, PaymentSucceededV1
from credence_common.db import Database
from credence_common.entrypoints import HealthCheck, rpc
from credence_common.metrics import Metrics
from credence_common.outbox_relay import OutboxRelay
from services.certificates import domain, usecases
from services.certificates.models import OutboxEvent, ProcessedEvent


class CertificateFee(DependencyProvider):
    """The certificate fee in fen, checked when the service starts rather than when a candidate pays."""

    def setup(self):
        self.fee_fen = domain.parse_fee_fen(self.container.config.get("CERTIFICATE_FEE_FEN",
                                                                      domain.CERTIFICATE_FEE_FEN))

    def get_dependency(self, worker_ctx):
        return self.fee_fen


class CertificatesService(HealthCheck):
    name = "certificates"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    certificate_fee_fen = CertificateFee()

    @rpc
    def certificates_for_candidate(self, actor: dict, candidate_id: str) -> dict:
        require_self_or_staff(actor, candidate_id)
        with self.db.transaction() as session:
            return usecases.certificates_for_candidate(session, candidate_id).model_dump(mode="json")

    @event_handler("scoring", CandidateQualifiedV1.event_type, requeue_on_error=True)
    def handle_candidate_qualified(self, message: dict) -> None:
        consume(self, message, CandidateQualifiedV1, ProcessedEvent,
                partial(usecases.create_for_qualified_candidate, fee_fen=self.certificate_fee_fen))

    @event_handler("payments", PaymentSucceededV1.event_type, requeue_on_error=True)
    def handle_payment_succeeded(self, message: dict) -> None:
        consume(self, message, PaymentSucceededV1, ProcessedEvent, usecases.issue_on_payment)
