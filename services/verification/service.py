"""Verification service entrypoints: thin nameko handlers that check the caller, parse the input and call one use
case (``usecases/``); the providers they are given are in ``dependencies.py``."""

from __future__ import annotations

import base64
from functools import partial

from nameko.timer import timer

from credence_common.bus.consumers import consume, consume_batch
from credence_common.bus.entrypoints import HealthCheck, rpc
from credence_common.bus.reliable_events import reliable_event_handler
from credence_common.bus.remote import call_with_deadline
from credence_common.bus.rpc_queue import RpcProxy
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import CredenceError, InvalidInput, refusal_to_wire
from credence_common.contracts.events import (
    CertificateIssuedV1,
    CertificateRevokedV1,
    CertificateSupersededV1,
    ResultCorrectedV1,
)
from credence_common.contracts.validation import parse
from credence_common.contracts.verification import (
    CreateShareCode,
    OpenSharedReport,
    PublicCheck,
    ReportCheck,
    RequestReport,
)
from credence_common.observability.metrics import Metrics
from credence_common.persistence.db import Database
from credence_common.runtime.settings import Settings
from credence_common.security.actors import require_role
from services.verification import dependencies, usecases
from services.verification.models import ProcessedEvent
from services.verification.usecases import reports as report_usecases

MAX_CHECKS_PER_BATCH = 256
RETENTION_INTERVAL_SECONDS = 3600  # retention is in days: hourly is prompt enough, and cheap when nothing is due


class VerificationService(HealthCheck):
    name = "verification"

    db = Database()
    outbox_relay = dependencies.outbox_relay()
    metrics = Metrics()
    settings = Settings()
    report_signer = dependencies.ReportKeys()
    scoring_rpc = RpcProxy("scoring")  # only to read the exam record an education-record report states

    @rpc
    def request_report(self, actor: str | None, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        wanted = parse(RequestReport, request)
        if wanted.kind == "education_record":
            # asked before the transaction opens, so no database lock waits on another service
            record = call_with_deadline(self.scoring_rpc, "scoring", "candidate_record", actor, candidate.subject,
                                        timeout=float(self.settings.get("RPC_TIMEOUT_SECONDS", 10)))
            with self.db.transaction() as session:
                return report_usecases.request_record_report(session, self.report_signer, candidate.subject,
                                                             record).model_dump(mode="json")
        with self.db.transaction() as session:
            return report_usecases.request_report(session, self.report_signer, candidate.subject,
                                                  wanted.certificate_number).model_dump(mode="json")

    @rpc
    def my_reports(self, actor: str | None) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return report_usecases.my_reports(session, self.report_signer, candidate.subject).model_dump(mode="json")

    @rpc
    def close_report(self, actor: str | None, report_code: str) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return report_usecases.close_report(session, self.report_signer, candidate.subject,
                                                report_code).model_dump(mode="json")

    @rpc
    def extend_report(self, actor: str | None, report_code: str) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return report_usecases.extend_report(session, self.report_signer, candidate.subject,
                                                 report_code).model_dump(mode="json")

    @rpc
    def report_pdf(self, actor: str | None, report_code: str) -> str:
        """Base64: the bus carries JSON."""
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return base64.b64encode(report_usecases.report_pdf(session, self.report_signer, candidate.subject,
                                                               report_code)).decode("ascii")

    @rpc
    def report_answer(self, report_code: str, client: str = "", channel: str = "report_code") -> dict:
        """``client``: the caller's address; ``channel``: report_code (the code typed, or its URL) or report_qr
        (the QR code's URL). Both are recorded for the holder (``report_usecases.accesses``)."""
        with self.db.transaction() as session:
            return report_usecases.report_answer(session, self.report_signer, report_code, str(client or ""),
                                                 str(channel or "")).model_dump(mode="json")

    @rpc(idempotent=False)  # its answer is a credential (the share code): never kept to be replayed
    def create_share_code(self, actor: str | None, report_code: str, request: dict | None = None) -> dict:
        candidate = require_role(actor, "candidate")
        wanted = parse(CreateShareCode, request or {})
        with self.db.transaction() as session:
            return report_usecases.create_share_code(session, candidate.subject, report_code,
                                                     wanted.valid_hours).model_dump(mode="json")

    @rpc
    def share_codes(self, actor: str | None) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return report_usecases.share_codes(session, candidate.subject).model_dump(mode="json")

    @rpc
    def revoke_share_code(self, actor: str | None, share_id: str) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            report_usecases.revoke_share_code(session, candidate.subject, share_id)
            return report_usecases.share_codes(session, candidate.subject).model_dump(mode="json")

    @rpc
    def open_shared_report(self, request: dict, client: str = "") -> dict:
        opening = parse(OpenSharedReport, request)
        with self.db.transaction() as session:
            return report_usecases.open_shared_report(session, self.report_signer, opening,
                                                      str(client or "")).model_dump(mode="json")

    @rpc
    def my_accesses(self, actor: str | None) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return report_usecases.accesses(session, candidate.subject).model_dump(mode="json")

    @rpc
    def my_accesses_csv(self, actor: str | None) -> str:
        """The same log as ``my_accesses``, as CSV text for the holder to download."""
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return report_usecases.accesses_csv(session, candidate.subject)

    @rpc
    def report_public_key(self) -> dict:
        return self.report_signer.public_key().model_dump(mode="json")

    @rpc
    def report_keys(self) -> dict:
        """/.well-known/credence-report-keys.json: every key that verifies reports today."""
        return self.report_signer.key_set(utcnow()).model_dump(mode="json")

    @rpc
    def check_report(self, request: dict) -> dict:
        wanted = parse(ReportCheck, request)
        return report_usecases.check_report(self.report_signer, wanted, utcnow()).model_dump(mode="json")

    @rpc
    def public_check(self, request: dict, client: str = "") -> dict:
        check = parse(PublicCheck, request)
        limit = int(self.settings.get("CHECKS_PER_NUMBER_PER_MINUTE", 20))
        # the log row commits even when the answer is a refusal: it is the audit trail and the per-number limit
        with self.db.autocommit() as connection:
            return usecases.public_check(connection, check, str(client or ""), limit).model_dump(mode="json")

    @rpc
    def public_checks(self, checks: list) -> list:
        """Many public checks in one round trip and one insert into the log: the gateway sends the checks that
        arrive together (gateway/batching.py). Each item is checked, logged and limited exactly as ``public_check``
        does it, and answers ``{"answer": ...}`` or ``{"refusal": ...}`` on its own."""
        if not isinstance(checks, list) or len(checks) > MAX_CHECKS_PER_BATCH:
            raise InvalidInput("invalid_batch", f"Send a list of at most {MAX_CHECKS_PER_BATCH} checks.")
        limit = int(self.settings.get("CHECKS_PER_NUMBER_PER_MINUTE", 20))
        outcomes: list = [None] * len(checks)
        well_formed: list[tuple[int, tuple]] = []
        for position, item in enumerate(checks):
            try:
                if not isinstance(item, dict):
                    raise InvalidInput("invalid_batch", "Each check is an object with request and client.")
                well_formed.append((position, (parse(PublicCheck, item.get("request")),
                                               str(item.get("client") or ""))))
            except CredenceError as refused:
                outcomes[position] = {"refusal": refusal_to_wire(refused)}
        with self.db.autocommit() as connection:
            answers = usecases.public_checks(connection, [check for _position, check in well_formed], limit)
        for (position, _check), answer in zip(well_formed, answers, strict=True):
            outcomes[position] = ({"refusal": refusal_to_wire(answer)} if isinstance(answer, CredenceError)
                                  else {"answer": answer.model_dump(mode="json")})
        return outcomes

    @timer(interval=RETENTION_INTERVAL_SECONDS)
    def apply_retention(self) -> None:
        """Old callers' addresses shrink to their network, old check-log and report-access rows go. Each
        replica runs it; the statements are idempotent (usecases.apply_retention), so two at once are safe."""
        retention = usecases.Retention(
            address_days=int(self.settings.get("CHECK_LOG_ADDRESS_DAYS", 30)),
            check_log_days=int(self.settings.get("CHECK_LOG_RETENTION_DAYS", 365)),
            report_access_days=int(self.settings.get("REPORT_ACCESS_RETENTION_DAYS", 365)))
        with self.db.transaction() as session:
            usecases.apply_retention(session, retention)

    @reliable_event_handler("certificates", CertificateIssuedV1.event_type, batch_size=200)
    def handle_certificate_issued(self, messages: list) -> None:
        # batched: issuing comes in bursts (a paid class, a production batch), and each would be a transaction;
        # as many as certificates issues together (its EVENT_BATCH_SIZE)
        consume_batch(self, messages, CertificateIssuedV1, ProcessedEvent, usecases.record_event, pass_message=True,
                      prepare=usecases.prepare_issued)

    @reliable_event_handler("certificates", CertificateRevokedV1.event_type)
    def handle_certificate_revoked(self, message: dict) -> None:
        consume(self, message, CertificateRevokedV1, ProcessedEvent, partial(usecases.record_event, message=message))

    @reliable_event_handler("certificates", CertificateSupersededV1.event_type)
    def handle_certificate_superseded(self, message: dict) -> None:
        consume(self, message, CertificateSupersededV1, ProcessedEvent,
                partial(usecases.record_event, message=message))

    @reliable_event_handler("scoring", ResultCorrectedV1.event_type)
    def handle_result_corrected(self, message: dict) -> None:
        consume(self, message, ResultCorrectedV1, ProcessedEvent, report_usecases.record_corrected)
