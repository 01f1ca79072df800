"""Scoring service entrypoints."""

from __future__ import annotations

from nameko.events import event_handler

from credence_common.actors import require_role, require_self_or_staff
from credence_common.consumers import consume
from credence_common.contracts.events import CandidateConfirmedV1, TicketsLinkedV1, TicketsMergedV1
from credence_common.contracts.scoring import PublishResults, RecordResults
from credence_common.db import Database
from credence_common.entrypoints import HealthCheck, rpc
from credence_common.metrics import Metrics
from credence_common.outbox_relay import OutboxRelay
from credence_common.validation import parse
from services.scoring import usecases
from services.scoring.models import OutboxEvent, ProcessedEvent


class ScoringService(HealthCheck):
    name = "scoring"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()

    @rpc
    def record_results(self, actor: dict, request: dict) -> dict:
        require_role(actor, "staff")
        batch = parse(RecordResults, request)
        with self.db.transaction() as session:
            return usecases.record_results(session, batch).model_dump(mode="json")

    @rpc
    def publish_results(self, actor: dict, request: dict) -> dict:
        require_role(actor, "staff")
        publication = parse(PublishResults, request)
        with self.db.transaction() as session:
            return usecases.publish_results(session, publication).model_dump(mode="json")

    @rpc
    def results_for_candidate(self, actor: dict, candidate_id: str) -> dict:
        require_self_or_staff(actor, candidate_id)
        with self.db.transaction() as session:
            return usecases.results_for_candidate(session, candidate_id).model_dump(mode="json")

    @event_handler("identity", CandidateConfirmedV1.event_type, requeue_on_error=True)
    def handle_candidate_confirmed(self, message: dict) -> None:
        consume(self, message, CandidateConfirmedV1, ProcessedEvent, usecases.add_to_roster)

    @event_handler("identity", TicketsLinkedV1.event_type, requeue_on_error=True)
    def handle_tickets_linked(self, message: dict) -> None:
        consume(self, message, TicketsLinkedV1, ProcessedEvent, usecases.link_tickets)

    @event_handler("identity", TicketsMergedV1.event_type, requeue_on_error=True)
    def handle_tickets_merged(self, message: dict) -> None:
        consume(self, message, TicketsMergedV1, ProcessedEvent, usecases.merge_tickets)
