"""Certificates service entrypoints: thin nameko handlers that check the caller, parse the input and call one use
case (``usecases/``; the rules are in ``domain.py``); the providers they are given are in ``dependencies.py``."""

from __future__ import annotations

import base64
from functools import partial

from credence_common.bus.consumers import consume, consume_batch
from credence_common.bus.entrypoints import HealthCheck, rpc
from credence_common.bus.reliable_events import reliable_event_handler
from credence_common.bus.remote import call_with_deadline
from credence_common.bus.rpc_queue import RpcProxy
from credence_common.contracts.certificates import (
    ApplyForReplacement,
    CancelReplacement,
    ConfirmCertificate,
    DecideCorrection,
    DecideRevocationCase,
    RequestCorrection,
    RevokeCertificate,
    ShipCertificate,
)
from credence_common.contracts.errors import Forbidden
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateQualifiedV1,
    PaymentRefundedV1,
    PaymentSucceededV1,
    QualificationWithdrawnV1,
)
from credence_common.contracts.payments import FeeSchedule
from credence_common.contracts.validation import parse
from credence_common.observability.metrics import Metrics
from credence_common.persistence.db import Database
from credence_common.persistence.messaging import read_event
from credence_common.runtime.settings import Settings
from credence_common.security.actors import require_role, require_self_or_staff, require_staff
from services.certificates import dependencies, usecases
from services.certificates.models import ProcessedEvent
from services.certificates.usecases import revocations

# Payments applied per transaction when they arrive together: 200 rather than 50 spreads each batch's fixed
# work (the inbox look-up, the lock, the serial reservation, the commit) and the relay's round over four times
# as many certificates; issuing ran 0.36 -> 0.53 of the raw confirmed publish in alternating runs
# (docs/performance.md "Issuance"). The consumer prefetches twice as many.
EVENT_BATCH_SIZE = 200
# the staff roles that find and read certificates and applications (credence_common/contracts/staff_roles.py): the
# certificate
# office, and support answering a candidate; only the registrar changes anything
CERTIFICATE_READERS = ("registrar", "support")


class CertificatesService(HealthCheck):
    name = "certificates"

    db = Database()
    outbox_relay = dependencies.outbox_relay()
    metrics = Metrics()
    rules = dependencies.Rules()
    data_keys = dependencies.protection()  # installs the keys of the Sealed columns before the first worker runs
    settings = Settings()
    payments_rpc = RpcProxy("payments")  # only to read payments' fee schedule, the one owner of the fees

    def _fees(self) -> FeeSchedule:
        """Payments' fee schedule, asked once per use that creates a certificate or an application, before its
        transaction opens (no lock waits on another service). Payments down or slow raises ``ServiceUnavailable``:
        an RPC answers 503, an event handler fails with nothing written and the event is retried later
        (credence_common/bus/reliable_events.py)."""
        answer = call_with_deadline(self.payments_rpc, "payments", "fee_schedule",
                                    timeout=float(self.settings.get("RPC_TIMEOUT_SECONDS", 10)))
        return FeeSchedule.model_validate(answer)

    @rpc
    def certificates_for_candidate(self, actor: str | None, candidate_id: str) -> dict:
        require_self_or_staff(actor, candidate_id, staff_roles=CERTIFICATE_READERS)
        with self.db.transaction() as session:
            return usecases.certificates_for_candidate(session, candidate_id).model_dump(mode="json")

    @rpc
    def certificate(self, actor: str | None, certificate_id: str) -> dict:
        who = require_role(actor, "candidate", "staff", staff_roles=CERTIFICATE_READERS)
        with self.db.transaction() as session:
            certificate = self._readable(session, who, certificate_id)
            return usecases.certificate_view(certificate).model_dump(mode="json")

    @rpc
    def certificate_by_number(self, actor: str | None, certificate_number: str) -> dict:
        require_staff(actor, *CERTIFICATE_READERS)
        with self.db.transaction() as session:
            return usecases.find_by_number(session, str(certificate_number)).model_dump(mode="json")

    @rpc
    def certificate_history(self, actor: str | None, certificate_id: str) -> dict:
        who = require_role(actor, "candidate", "staff", staff_roles=CERTIFICATE_READERS)
        with self.db.transaction() as session:
            certificate = self._readable(session, who, certificate_id)
            return usecases.history(session, certificate).model_dump(mode="json")

    @staticmethod
    def _readable(session, who, certificate_id):
        certificate = usecases.find_certificate(session, certificate_id)
        if who.role == "candidate" and certificate.candidate_id != who.subject:
            raise Forbidden("not_your_certificate", "This certificate is someone else's.")
        return certificate

    @rpc
    def confirm_certificate(self, actor: str | None, certificate_id: str, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        confirmation = parse(ConfirmCertificate, request or {})
        with self.db.transaction() as session:
            return usecases.confirm(session, candidate.subject, certificate_id, confirmation.photo_reference,
                                    confirmation.delivery_address).model_dump(mode="json")

    @rpc
    def request_correction(self, actor: str | None, certificate_id: str, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        correction = parse(RequestCorrection, request)
        with self.db.transaction() as session:
            return usecases.request_correction(session, candidate.subject, certificate_id,
                                               correction).model_dump(mode="json")

    @rpc
    def correction_requests(self, actor: str | None, open_only: bool = True) -> dict:
        require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.correction_requests(session, bool(open_only)).model_dump(mode="json")

    @rpc
    def decide_correction(self, actor: str | None, request_id: str, request: dict) -> dict:
        staff = require_staff(actor, "registrar")
        decision = parse(DecideCorrection, request)
        with self.db.transaction() as session:
            return usecases.decide_correction(session, staff.subject, request_id, decision.decision,
                                              decision.note).model_dump(mode="json")

    @rpc
    def revoke_certificate(self, actor: str | None, certificate_id: str, request: dict) -> dict:
        staff = require_staff(actor, "registrar")
        revocation = parse(RevokeCertificate, request)
        with self.db.transaction() as session:
            return revocations.revoke(session, staff.subject, certificate_id,
                                      revocation.reason).model_dump(mode="json")

    @rpc
    def revocation_cases(self, actor: str | None, status: str | None = None, overdue_only: bool = False) -> dict:
        require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return revocations.revocation_cases(session, status, bool(overdue_only)).model_dump(mode="json")

    @rpc
    def decide_revocation_case(self, actor: str | None, case_id: str, request: dict) -> dict:
        staff = require_staff(actor, "registrar")
        decision = parse(DecideRevocationCase, request)
        with self.db.transaction() as session:
            return revocations.decide_revocation_case(session, staff.subject, case_id, decision.decision,
                                                      decision.note).model_dump(mode="json")

    @rpc
    def apply_for_replacement(self, actor: str | None, certificate_id: str, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        application = parse(ApplyForReplacement, request)
        fees = self._fees()
        with self.db.transaction() as session:
            return usecases.apply_for_replacement(session, candidate.subject, certificate_id, application,
                                                  fees).model_dump(mode="json")

    @rpc
    def replacement_applications(self, actor: str | None, status: str | None = None) -> dict:
        who = require_role(actor, "candidate", "staff", staff_roles=CERTIFICATE_READERS)
        with self.db.transaction() as session:
            candidate_id = who.subject if who.role == "candidate" else None
            return usecases.replacement_applications(session, candidate_id, status).model_dump(mode="json")

    @rpc
    def start_replacement(self, actor: str | None, application_id: str) -> dict:
        staff = require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.start_replacement(session, staff.subject, application_id).model_dump(mode="json")

    @rpc
    def complete_replacement(self, actor: str | None, application_id: str) -> dict:
        staff = require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.complete_replacement(session, staff.subject, application_id,
                                                 self.rules).model_dump(mode="json")

    @rpc
    def withdraw_replacement(self, actor: str | None, application_id: str) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return usecases.withdraw_replacement(session, candidate.subject, application_id).model_dump(mode="json")

    @rpc
    def cancel_replacement(self, actor: str | None, application_id: str, request: dict) -> dict:
        staff = require_staff(actor, "registrar")
        cancellation = parse(CancelReplacement, request)
        with self.db.transaction() as session:
            return usecases.cancel_replacement(session, staff.subject, application_id,
                                               cancellation.reason).model_dump(mode="json")

    @rpc
    def production_batches(self, actor: str | None) -> dict:
        require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.batches(session).model_dump(mode="json")

    @rpc
    def close_batch(self, actor: str | None, batch_id: str) -> dict:
        staff = require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.close_batch(session, staff.subject, batch_id).model_dump(mode="json")

    @rpc
    def batch_csv(self, actor: str | None, batch_id: str) -> str:
        require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.batch_csv(session, batch_id)

    @rpc
    def batch_proof_pdf(self, actor: str | None, batch_id: str) -> str:
        """Base64: the bus carries JSON."""
        require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return base64.b64encode(usecases.batch_proof_pdf(session, batch_id)).decode("ascii")

    @rpc
    def ship_certificate(self, actor: str | None, certificate_id: str, request: dict) -> dict:
        staff = require_staff(actor, "registrar")
        shipment = parse(ShipCertificate, request)
        with self.db.transaction() as session:
            return usecases.ship(session, staff.subject, certificate_id, shipment.courier,
                                 shipment.tracking_number).model_dump(mode="json")

    @rpc
    def mark_delivered(self, actor: str | None, certificate_id: str) -> dict:
        staff = require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.mark_delivered(session, staff.subject, certificate_id).model_dump(mode="json")

    @rpc
    def overdue_shipments(self, actor: str | None) -> dict:
        require_staff(actor, "registrar")
        with self.db.transaction() as session:
            return usecases.overdue_shipments(session).model_dump(mode="json")

    @reliable_event_handler("identity", CandidateConfirmedV1.event_type)
    def handle_candidate_confirmed(self, message: dict) -> None:
        consume(self, message, CandidateConfirmedV1, ProcessedEvent, usecases.record_candidate_payer)

    @reliable_event_handler("scoring", CandidateQualifiedV1.event_type)
    def handle_candidate_qualified(self, message: dict) -> None:
        # payments is asked only when a certificate is to be created, before the transaction (payments not answering:
        # nothing is written and the event is retried later); a malformed event is dead-lettered at once
        with self.db.transaction() as session:
            needed = usecases.needs_fee_schedule(session, read_event(message, CandidateQualifiedV1), ProcessedEvent)
        fees = self._fees() if needed else None
        consume(self, message, CandidateQualifiedV1, ProcessedEvent,
                partial(usecases.create_for_qualified_candidate, fees=fees))

    @reliable_event_handler("scoring", QualificationWithdrawnV1.event_type)
    def handle_qualification_withdrawn(self, message: dict) -> None:
        consume(self, message, QualificationWithdrawnV1, ProcessedEvent,
                partial(revocations.withdraw_qualification, rules=self.rules))

    @reliable_event_handler("payments", PaymentRefundedV1.event_type)
    def handle_payment_refunded(self, message: dict) -> None:
        consume(self, message, PaymentRefundedV1, ProcessedEvent, revocations.revoke_on_refund)

    @reliable_event_handler("payments", PaymentSucceededV1.event_type, batch_size=EVENT_BATCH_SIZE)
    def handle_payment_succeeded(self, messages: list) -> None:
        # batched: an institution paying for a class, or a day's payments after an outage, arrive together
        consume_batch(self, messages, PaymentSucceededV1, ProcessedEvent,
                      partial(usecases.issue_on_payment, rules=self.rules), prepare=usecases.lock_for_payments)
