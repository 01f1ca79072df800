"""Verification service entrypoints."""

from __future__ import annotations

from functools import partial

from nameko.events import event_handler

from credence_common.consumers import consume
from credence_common.contracts.events import CertificateIssuedV1, CertificateRevokedV1, CertificateSupersededV1
from credence_common.contracts.verification import PublicCheck
from credence_common.db import Database
from credence_common.entrypoints import HealthCheck, rpc
from credence_common.errors import CredenceError
from credence_common.metrics import Metrics
from credence_common.outbox_relay import OutboxRelay
from credence_common.settings import Settings
from credence_common.validation import parse
from services.verification import usecases
from services.verification.models import OutboxEvent, ProcessedEvent


class VerificationService(HealthCheck):
    name = "verification"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    settings = Settings()

    @rpc
    def public_check(self, request: dict, client: str = "") -> dict:
        check = parse(PublicCheck, request)
        limit = int(self.settings.get("CHECKS_PER_NUMBER_PER_MINUTE", 20))
        # committed even when the answer is a refusal: the log is the audit trail and the per-number limit
        with self.db.transaction() as session:
            try:
                return usecases.public_check(session, check, str(client or ""), limit).model_dump(mode="json")
            except CredenceError as refused:
                pending = refused
        raise pending

    @event_handler("certificates", CertificateIssuedV1.event_type, requeue_on_error=True)
    def handle_certificate_issued(self, message: dict) -> None:
        consume(self, message, CertificateIssuedV1, ProcessedEvent, partial(usecases.record_event, message=message))

    @event_handler("certificates", CertificateRevokedV1.event_type, requeue_on_error=True)
    def handle_certificate_revoked(self, message: dict) -> None:
        consume(self, message, CertificateRevokedV1, ProcessedEvent, partial(usecases.record_event, message=message))

    @event_handler("certificates", CertificateSupersededV1.event_type, requeue_on_error=True)
    def handle_certificate_superseded(self, message: dict) -> None:
        consume(self, message, CertificateSupersededV1, ProcessedEvent,
                partial(usecases.record_event, message=message))
