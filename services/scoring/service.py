"""Scoring service entrypoints: thin nameko handlers that check the caller, parse the input and call one use case
(``usecases/``); the providers they are given are in ``dependencies.py``."""

from __future__ import annotations

import base64
import binascii

from nameko.timer import timer

from credence_common.bus.consumers import consume
from credence_common.bus.entrypoints import HealthCheck, rpc
from credence_common.bus.reliable_events import reliable_event_handler
from credence_common.contracts.errors import CredenceError, InvalidInput, refusal_to_wire
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateTransferredV1,
    TicketsLinkedV1,
    TicketsMergedV1,
)
from credence_common.contracts.scoring import (
    CloseScoreReview,
    CorrectResult,
    DecideHeldResult,
    EvaluateResult,
    GrantExemption,
    PublishResults,
    RecordResults,
    RequestScoreReview,
    ResultUpload,
)
from credence_common.contracts.validation import parse
from credence_common.observability.metrics import Metrics
from credence_common.persistence.db import Database
from credence_common.runtime.settings import Settings
from credence_common.security.actors import as_actors, require_role, require_self_or_staff, require_staff
from services.scoring import dependencies, usecases
from services.scoring.models import ProcessedEvent
from services.scoring.usecases import imports, records

RELEASE_POLL_SECONDS = 2.0
# the staff roles that handle results and may read a result's history (credence_common/contracts/staff_roles.py)
RESULT_HANDLERS = ("recorder", "expert", "publisher", "support")
MAX_READS_PER_BATCH = 200


class ScoringService(HealthCheck):
    name = "scoring"

    db = Database()
    data_keys = dependencies.protection()  # installs the keys of the Sealed columns before the first worker runs
    outbox_relay = dependencies.outbox_relay()
    metrics = Metrics()
    settings = Settings()

    @rpc
    def record_results(self, actor: str | None, request: dict) -> dict:
        staff = require_staff(actor, "recorder")
        batch = parse(RecordResults, request)
        with self.db.transaction() as session:
            return usecases.record_results(session, batch, staff.subject).model_dump(mode="json")

    @rpc
    def publish_results(self, actor: str | None, request: dict) -> dict:
        staff = require_staff(actor, "publisher")
        publication = parse(PublishResults, request)
        with self.db.transaction() as session:
            return usecases.publish_results(session, publication, staff.subject).model_dump(mode="json")

    @rpc
    def import_results(self, actor: str | None, request: dict) -> dict:
        """An exam centre's file, all rows or none (large files: the import-results CLI)."""
        staff = require_staff(actor, "recorder")
        upload = parse(ResultUpload, request)
        try:
            content = base64.b64decode(upload.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("invalid_upload", "The file content is not valid base64.") from None
        if len(content) > int(self.settings.get("IMPORT_INLINE_MAX_BYTES", imports.INLINE_MAX_BYTES)):
            # too large to finish within the gateway's deadline: accepted now, imported by run_queued_imports
            with self.db.transaction() as session:
                return imports.accept(session, content, upload.file_format, staff.subject)
        return imports.run_import_bytes(self.db.engine, content, upload.file_format, staff.subject).as_dict()

    @timer(interval=1.0)
    def run_queued_imports(self) -> None:
        """Uploads accepted for the background, one after the other (usecases/imports.py)."""
        while imports.run_one(self.db.engine) is not None:
            pass

    @rpc
    def import_report(self, actor: str | None, batch_id: str) -> dict:
        require_staff(actor, "recorder")
        with self.db.transaction() as session:
            return imports.import_report(session, batch_id)

    @rpc
    def result_history(self, actor: str | None, result_id: str) -> dict:
        require_staff(actor, *RESULT_HANDLERS)
        with self.db.transaction() as session:
            return {"result_id": result_id, "history": usecases.result_history(session, result_id)}

    @rpc
    def evaluation_queue(self, actor: str | None, program_code: str, sitting: str) -> dict:
        require_staff(actor, "expert")
        with self.db.transaction() as session:
            return usecases.evaluation_queue(session, program_code, sitting).model_dump(mode="json")

    @rpc
    def evaluate_result(self, actor: str | None, result_id: str, request: dict) -> dict:
        expert = require_staff(actor, "expert")
        evaluation = parse(EvaluateResult, request)
        with self.db.transaction() as session:
            return usecases.evaluate_result(session, result_id, expert.subject, evaluation.decision)

    @rpc
    def decide_held_result(self, actor: str | None, result_id: str, request: dict) -> dict:
        decider = require_staff(actor, "expert")
        decision = parse(DecideHeldResult, request)
        with self.db.transaction() as session:
            return usecases.decide_held_result(session, result_id, decider.subject, decision.decision,
                                               decision.reason)

    @rpc
    def list_releases(self, actor: str | None) -> dict:
        require_staff(actor, "publisher")
        with self.db.transaction() as session:
            return usecases.list_releases(session).model_dump(mode="json")

    @rpc
    def cancel_release(self, actor: str | None, release_id: str) -> dict:
        staff = require_staff(actor, "publisher")
        with self.db.transaction() as session:
            return usecases.cancel_release(session, release_id, staff.subject).model_dump(mode="json")

    @timer(interval=RELEASE_POLL_SECONDS)
    def publish_due_releases(self) -> None:
        """Scheduled releases are published here, within seconds of their time."""
        with self.db.transaction() as session:
            usecases.publish_due_releases(session)

    @rpc
    def request_score_review(self, actor: str | None, result_id: str, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        review = parse(RequestScoreReview, request)
        with self.db.transaction() as session:
            return records.request_review(session, candidate.subject, result_id, review.reason).model_dump(mode="json")

    @rpc
    def close_score_review(self, actor: str | None, review_id: str, request: dict) -> dict:
        staff = require_staff(actor, "expert")
        closing = parse(CloseScoreReview, request)
        with self.db.transaction() as session:
            return records.close_review(session, review_id, staff.subject, closing.resolution, closing.new_score,
                                        closing.note).model_dump(mode="json")

    @rpc
    def score_reviews(self, actor: str | None, candidate_id: str) -> dict:
        require_self_or_staff(actor, candidate_id, staff_roles=("expert", "support"))
        with self.db.transaction() as session:
            return records.reviews_of(session, candidate_id).model_dump(mode="json")

    @rpc
    def open_score_reviews(self, actor: str | None) -> dict:
        require_staff(actor, "expert")
        with self.db.transaction() as session:
            return records.open_reviews(session).model_dump(mode="json")

    @rpc
    def correct_result(self, actor: str | None, result_id: str, request: dict) -> dict:
        staff = require_staff(actor, "recorder")
        correction = parse(CorrectResult, request)
        with self.db.transaction() as session:
            return records.correct_before_release(session, result_id, staff.subject, correction.new_score,
                                                  correction.reason)

    @rpc
    def grant_exemption(self, actor: str | None, request: dict) -> dict:
        staff = require_staff(actor, "recorder")
        exemption = parse(GrantExemption, request)
        with self.db.transaction() as session:
            return records.grant_exemption(session, staff.subject, exemption.candidate_id, exemption.program_code,
                                           exemption.course_code, exemption.reason).model_dump(mode="json")

    @rpc
    def candidate_record(self, actor: str | None, candidate_id: str) -> dict:
        require_self_or_staff(actor, candidate_id, staff_roles=("support",))
        with self.db.transaction() as session:
            return records.candidate_record(session, candidate_id).model_dump(mode="json")

    @rpc
    def list_programs(self) -> dict:
        """Programs with their rules in words, as staff and candidates read them."""
        with self.db.transaction() as session:
            return usecases.list_programs(session)

    @rpc
    def results_for_candidate(self, actor: str | None, candidate_id: str) -> dict:
        require_self_or_staff(actor, candidate_id)
        with self.db.transaction() as session:
            return usecases.results_for_candidate(session, candidate_id).model_dump(mode="json")

    @rpc
    def results_for_candidates(self, reads: list, actors: str | None = None) -> list:
        """Many candidates' results in one round trip and one query (the gateway sends the reads that arrive
        together, gateway/batching.py). Each item is ``{"candidate_id": ...}`` with its actor either in
        ``actors``, one token the gateway signed for the whole batch (``ActorSigner.sign_batch``: its i-th actor
        is the i-th read's), or in the item itself (``"actor"``: a token of its own). Each read is checked on its
        own, exactly as ``results_for_candidate`` checks it; each answers ``{"answer": ...}`` or
        ``{"refusal": ...}``."""
        if not isinstance(reads, list) or len(reads) > MAX_READS_PER_BATCH:
            raise InvalidInput("invalid_batch", f"Send a list of at most {MAX_READS_PER_BATCH} reads.")
        outcomes: list = [None] * len(reads)
        allowed: list[tuple[int, str]] = []
        try:
            vouched = as_actors(actors, len(reads)) if actors is not None else None
        except CredenceError as refused:  # the batch's signature is every item's: all are refused alike
            return [{"refusal": refusal_to_wire(refused)} for _item in reads]
        for position, item in enumerate(reads):
            try:
                if not isinstance(item, dict) or not isinstance(item.get("candidate_id"), str):
                    raise InvalidInput("invalid_batch", "Each read is an object with actor and candidate_id.")
                require_self_or_staff(vouched[position] if vouched is not None else item.get("actor"),
                                      item["candidate_id"])
                allowed.append((position, item["candidate_id"]))
            except CredenceError as refused:
                outcomes[position] = {"refusal": refusal_to_wire(refused)}
        if allowed:
            with self.db.autocommit() as connection:  # one SELECT: no transaction of its own needed
                found = usecases.results_for_candidates(connection, [candidate for _position, candidate in allowed])
            for position, candidate in allowed:
                outcomes[position] = {"answer": found[candidate].model_dump(mode="json")}
        return outcomes

    @reliable_event_handler("identity", CandidateConfirmedV1.event_type)
    def handle_candidate_confirmed(self, message: dict) -> None:
        consume(self, message, CandidateConfirmedV1, ProcessedEvent, usecases.add_to_roster)

    @reliable_event_handler("identity", TicketsLinkedV1.event_type)
    def handle_tickets_linked(self, message: dict) -> None:
        consume(self, message, TicketsLinkedV1, ProcessedEvent, usecases.link_tickets)

    @reliable_event_handler("identity", CandidateTransferredV1.event_type)
    def handle_candidate_transferred(self, message: dict) -> None:
        consume(self, message, CandidateTransferredV1, ProcessedEvent, usecases.record_transfer)

    @reliable_event_handler("identity", TicketsMergedV1.event_type)
    def handle_tickets_merged(self, message: dict) -> None:
        consume(self, message, TicketsMergedV1, ProcessedEvent, usecases.merge_tickets)
