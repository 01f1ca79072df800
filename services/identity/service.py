"""Identity service entrypoints: thin, validated, one transaction each."""

from __future__ import annotations

from credence_common.contracts.identity import (
    CandidateCredentials,
    ConfirmIdentity,
    RegisterCandidate,
    StaffCredentials,
)
from credence_common.db import Database
from credence_common.entrypoints import HealthCheck, rpc
from credence_common.errors import Conflict
from credence_common.metrics import Metrics
from credence_common.outbox_relay import OutboxRelay
from credence_common.settings import Settings
from credence_common.validation import parse
from services.identity import usecases
from services.identity.models import OutboxEvent
from services.identity.verifier import IdentityVerifier


class IdentityService(HealthCheck):
    name = "identity"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    verifier = IdentityVerifier()
    settings = Settings()

    @rpc
    def register_candidate(self, request: dict) -> dict:
        registration = parse(RegisterCandidate, request)
        with self.db.transaction() as session:
            return usecases.register_candidate(session, registration).model_dump(mode="json")

    @rpc
    def confirm_identity(self, candidate_id: str, request: dict) -> dict:
        confirmation = parse(ConfirmIdentity, request)
        with self.db.transaction() as session:
            view = usecases.confirm_identity(session, candidate_id, confirmation.method, self.verifier)
            return view.model_dump(mode="json")

    @rpc
    def get_candidate(self, candidate_id: str) -> dict:
        with self.db.transaction() as session:
            return usecases.candidate_view(usecases.get_candidate(session, candidate_id)).model_dump(mode="json")

    @rpc
    def authenticate_candidate(self, request: dict) -> dict:
        credentials = parse(CandidateCredentials, request)
        with self.db.transaction() as session:
            principal = usecases.authenticate_candidate(session, credentials.resident_id_number,
                                                        credentials.password)
            return principal.model_dump(mode="json")

    @rpc
    def authenticate_staff(self, request: dict) -> dict:
        credentials = parse(StaffCredentials, request)
        try:
            with self.db.transaction() as session:
                usecases.ensure_bootstrap_staff(session, self.settings.get("BOOTSTRAP_STAFF_USERNAME"),
                                                self.settings.get("BOOTSTRAP_STAFF_PASSWORD"))
        except Conflict:
            pass  # a concurrent first sign-in created the account

        with self.db.transaction() as session:
            principal = usecases.authenticate_staff(session, credentials.username, credentials.password)
            return principal.model_dump(mode="json")
