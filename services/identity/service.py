"""Identity service entrypoints: thin, validated, one transaction each.

Use cases refuse by raising. Those that must keep a failure counter (wrong code, failed sign-in) raise
``CommitThenRefuse``; the unit of work (``self.db``, ``dependencies.IdentityDatabase``) commits the counter, then
raises the refusal."""

from __future__ import annotations

import secrets

from credence_common.bus.entrypoints import HealthCheck, rpc
from credence_common.bus.outbox_relay import OutboxRelay
from credence_common.contracts.errors import NotFound
from credence_common.contracts.identity import (
    ChangePassword,
    ChoosePrimaryTicket,
    CodeLogin,
    ConfirmIdentityOnline,
    ConfirmIdentityOnSite,
    ConfirmIdentitySession,
    CreateInstitution,
    CreateStaffAccount,
    DecidePriorEducation,
    DevSmsQuery,
    ImportLegacyTickets,
    InstitutionCredentials,
    Login,
    MergeTickets,
    RefreshTokenRequest,
    RegisterCandidate,
    RegisterStudent,
    RequestMobileCode,
    ResetPasswordWithAnswer,
    ResetPasswordWithCode,
    SecurityQuestionRequest,
    SetSecurityQuestion,
    SetStaffRoles,
    StaffCredentials,
    SubmitPriorEducation,
    SubmitPriorEducationProof,
    TicketLookup,
    TransferRegion,
)
from credence_common.contracts.validation import parse
from credence_common.observability.metrics import Metrics
from credence_common.runtime.settings import Settings
from credence_common.security.actors import require_role, require_self, require_staff
from services.identity import usecases
from services.identity.dependencies import DegreeRegistry, IdentityDatabase, IdentityVerifier, Protection, Sms
from services.identity.models import OutboxEvent
from services.identity.usecases import institutions, liveness, prior_education, tickets
from services.identity.usecases.access import institution_of, visible_candidate


def _dump(outcome):
    return outcome.model_dump(mode="json") if hasattr(outcome, "model_dump") else outcome


def _done(message: str) -> dict:
    return {"status": "done", "message": message}


class IdentityService(HealthCheck):
    name = "identity"

    db = IdentityDatabase()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    verifier = IdentityVerifier()
    protection = Protection()
    sms = Sms()
    degree_registry = DegreeRegistry()
    settings = Settings()

    # --- codes and registration ---------------------------------------------------------------------

    @rpc
    def request_mobile_code(self, request: dict, client_address: str) -> dict:
        wanted = parse(RequestMobileCode, request)
        with self.db.transaction() as session:
            outcome = usecases.request_code(session, self.protection, self.sms, wanted.mobile, wanted.purpose,
                                            client_address)
        return _dump(outcome)

    @rpc
    def register_candidate(self, request: dict) -> dict:
        registration = parse(RegisterCandidate, request)
        with self.db.transaction() as session:
            outcome = usecases.register_candidate(session, self.protection, registration)
        return _dump(outcome)

    @rpc(idempotent=False)  # holds codes: never stored nor replayed
    def dev_sms_messages(self, request: dict) -> dict:
        """Development only: what the dev SMS adapter 'sent' to a number, newest first."""
        query = parse(DevSmsQuery, request)
        if not getattr(self.sms, "readable", False):
            raise NotFound("route_not_found", "No such endpoint.")
        with self.db.transaction() as session:
            return {"messages": usecases.dev_sms_messages(session, self.protection, query.mobile)}

    # --- sessions -------------------------------------------------------------------------------------

    @rpc(idempotent=False)  # issues a credential: never stored nor replayed
    def login(self, request: dict, client_address: str | None = None) -> dict:
        credentials = parse(Login, request)
        with self.db.transaction() as session:
            outcome = usecases.login(session, self.protection, credentials.login, credentials.password,
                                     client_address)
        return _dump(outcome)

    @rpc(idempotent=False)  # issues a credential: never stored nor replayed
    def login_with_code(self, request: dict) -> dict:
        credentials = parse(CodeLogin, request)
        with self.db.transaction() as session:
            outcome = usecases.login_with_code(session, self.protection, credentials.mobile, credentials.code)
        return _dump(outcome)

    @rpc(idempotent=False)  # issues a credential: never stored nor replayed
    def refresh_session(self, request: dict) -> dict:
        token = parse(RefreshTokenRequest, request)
        with self.db.transaction() as session:
            outcome = usecases.refresh(session, self.protection, token.refresh_token)
        return _dump(outcome)

    @rpc
    def logout(self, request: dict) -> dict:
        token = parse(RefreshTokenRequest, request)
        with self.db.transaction() as session:
            usecases.logout(session, self.protection, token.refresh_token)
        return {"status": "done", "message": "Signed out."}

    @rpc(idempotent=False)  # issues a credential: never stored nor replayed
    def authenticate_staff(self, request: dict, client_address: str | None = None) -> dict:
        credentials = parse(StaffCredentials, request)
        return _dump(usecases.sign_in_staff(self.db, self.protection, self.settings.get("BOOTSTRAP_STAFF_USERNAME"),
                                            self.settings.get("BOOTSTRAP_STAFF_PASSWORD"), credentials.username,
                                            credentials.password, client_address))

    # --- the candidate's record -----------------------------------------------------------------------

    @rpc
    def get_candidate(self, actor: str | None, candidate_id: str) -> dict:
        with self.db.transaction() as session:
            return _dump(usecases.candidate_view(visible_candidate(session, actor, candidate_id)))

    @rpc
    def confirm_identity(self, actor: str | None, candidate_id: str, request: dict) -> dict:
        require_self(actor, candidate_id)
        evidence = parse(ConfirmIdentityOnline, request)
        if getattr(self.verifier, "supports_sessions", False):
            raise liveness.session_required()
        with self.db.transaction() as session:
            return _dump(usecases.confirm_online(session, self.protection, candidate_id, evidence.id_card_image_ref,
                                                 evidence.liveness_ref, self.verifier))

    @rpc(idempotent=False)  # its url holds the session's token (a credential): never stored nor replayed
    def start_identity_session(self, actor: str | None, candidate_id: str) -> dict:
        """Checks the name and ID number at the national registry, then opens a liveness session at the vendor
        (services/identity/usecases/liveness.py). The vendor is called outside any transaction."""
        require_self(actor, candidate_id)
        return _dump(liveness.start(self.db, self.protection, self.verifier, candidate_id))

    @rpc
    def confirm_identity_session(self, actor: str | None, candidate_id: str, request: dict) -> dict:
        """The liveness session's result as the candidate's decision: once per session, this candidate's only."""
        require_self(actor, candidate_id)
        confirmation = parse(ConfirmIdentitySession, request)
        return _dump(liveness.confirm(self.db, self.protection, self.verifier, candidate_id, confirmation.biz_token))

    @rpc
    def confirm_identity_on_site(self, actor: str | None, candidate_id: str, request: dict) -> dict:
        """Authority staff (role ``support``) for anyone; an institution's staff for its own students."""
        checker = require_role(actor, "staff", "institution", staff_roles=("support",))
        decision = parse(ConfirmIdentityOnSite, request)
        with self.db.transaction() as session:
            visible_candidate(session, checker, candidate_id)
            return _dump(usecases.confirm_on_site(session, candidate_id, checker.subject,
                                                  decision.decision == "approve", decision.reason))

    # --- staff accounts and their roles (admin) -------------------------------------------------------

    @rpc
    def create_staff_account(self, actor: str | None, request: dict) -> dict:
        admin = require_staff(actor, "admin")
        account = parse(CreateStaffAccount, request)
        with self.db.transaction() as session:
            return usecases.create_staff_account(session, account.username, account.display_name, account.password,
                                                 account.roles, created_by=admin.subject)

    @rpc
    def staff_accounts(self, actor: str | None) -> dict:
        require_staff(actor, "admin")
        with self.db.transaction() as session:
            return _dump(usecases.staff_accounts(session))

    @rpc
    def set_staff_roles(self, actor: str | None, username: str, request: dict) -> dict:
        """The account's whole set of roles from now on; it counts from the account's next sign-in or refresh."""
        admin = require_staff(actor, "admin")
        change = parse(SetStaffRoles, request)
        with self.db.transaction() as session:
            return _dump(usecases.set_staff_roles(session, str(username), change.roles, change.reason,
                                                  admin.subject))

    @rpc
    def staff_role_changes(self, actor: str | None, username: str) -> dict:
        require_staff(actor, "admin")
        with self.db.transaction() as session:
            return _dump(usecases.staff_role_changes(session, str(username)))

    @rpc
    def transfer_region(self, actor: str | None, candidate_id: str, request: dict) -> dict:
        staff = require_staff(actor, "support")
        transfer = parse(TransferRegion, request)
        with self.db.transaction() as session:
            return _dump(usecases.transfer_region(session, candidate_id, transfer.to_region, transfer.reason,
                                                  staff.subject))

    # --- institutions ---------------------------------------------------------------------------------

    @rpc
    def create_institution(self, actor: str | None, request: dict) -> dict:
        require_staff(actor, "admin")
        institution = parse(CreateInstitution, request)
        with self.db.transaction() as session:
            return _dump(institutions.create_institution(session, institution))

    @rpc(idempotent=False)  # issues a credential: never stored nor replayed
    def authenticate_institution(self, request: dict, client_address: str | None = None) -> dict:
        credentials = parse(InstitutionCredentials, request)
        with self.db.transaction() as session:
            outcome = institutions.authenticate(session, self.protection, credentials.username,
                                                credentials.password, client_address)
        return _dump(outcome)

    @rpc
    def register_student(self, actor: str | None, request: dict) -> dict:
        """An institution's staff register their own student, with the code texted to the student."""
        checker = require_role(actor, "institution")
        student = parse(RegisterStudent, request)
        # a random password nobody knows; the student sets their own with a texted reset code
        registration = RegisterCandidate(**student.model_dump(), password=f"Aa1-{secrets.token_urlsafe(32)}")
        with self.db.transaction() as session:
            institution_id = institution_of(session, checker)
            outcome = usecases.register_candidate(session, self.protection, registration,
                                                  institution_id=institution_id)
        return _dump(outcome)

    @rpc
    def institution_students(self, actor: str | None) -> dict:
        with self.db.transaction() as session:
            return _dump(institutions.students(session, require_role(actor, "institution")))

    # --- existing candidates' older ticket numbers --------------------------------------------------

    @rpc
    def import_legacy_tickets(self, actor: str | None, request: dict) -> dict:
        require_staff(actor, "support")
        batch = parse(ImportLegacyTickets, request)
        with self.db.transaction() as session:
            return _dump(tickets.import_legacy(session, self.protection, batch))

    @rpc
    def my_tickets(self, actor: str | None) -> dict:
        candidate = require_role(actor, "candidate")
        with self.db.transaction() as session:
            return _dump(tickets.my_tickets(session, candidate.subject))

    @rpc
    def choose_primary_ticket(self, actor: str | None, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        choice = parse(ChoosePrimaryTicket, request)
        with self.db.transaction() as session:
            return _dump(tickets.choose_primary(session, candidate.subject, choice.ticket_number))

    @rpc
    def merge_tickets(self, actor: str | None, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        merge = parse(MergeTickets, request)
        with self.db.transaction() as session:
            return _dump(tickets.merge(session, candidate.subject, merge.ticket_numbers))

    # --- prior education (degree-upgrade candidates) ------------------------------------------------

    @rpc
    def submit_prior_education(self, actor: str | None, request: dict) -> dict:
        """The registry is asked between two transactions (services/identity/usecases/prior_education.py)."""
        candidate = require_role(actor, "candidate")
        submission = parse(SubmitPriorEducation, request)
        return _dump(prior_education.submit(self.db, self.protection, self.degree_registry, candidate.subject,
                                            submission.degree_certificate_number))

    @rpc
    def submit_prior_education_proof(self, actor: str | None, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        proof = parse(SubmitPriorEducationProof, request)
        with self.db.transaction() as session:
            return _dump(prior_education.submit_proof(session, candidate.subject, proof.proof_ref))

    @rpc
    def prior_education_of(self, actor: str | None, candidate_id: str) -> dict:
        require_staff(actor, "support")
        with self.db.transaction() as session:
            return _dump(prior_education.view(session, candidate_id))

    @rpc
    def decide_prior_education(self, actor: str | None, candidate_id: str, request: dict) -> dict:
        staff = require_staff(actor, "support")
        decision = parse(DecidePriorEducation, request)
        with self.db.transaction() as session:
            return _dump(prior_education.decide(session, candidate_id, staff.subject,
                                                decision.decision == "approve", decision.reason))

    @rpc
    def change_password(self, actor: str | None, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        change = parse(ChangePassword, request)
        with self.db.transaction() as session:
            usecases.change_password(session, self.protection, candidate.subject, change.current_password,
                                     change.new_password)
        return _done("Password changed; every session (this one included) must sign in again.")

    @rpc
    def set_security_question(self, actor: str | None, request: dict) -> dict:
        candidate = require_role(actor, "candidate")
        change = parse(SetSecurityQuestion, request)
        with self.db.transaction() as session:
            usecases.set_security_question(session, self.protection, candidate.subject, change.current_password,
                                           change.security_question, change.security_answer)
        return _done("Security question saved.")

    # --- recovery -------------------------------------------------------------------------------------

    @rpc
    def reset_password_with_code(self, request: dict) -> dict:
        reset = parse(ResetPasswordWithCode, request)
        with self.db.transaction() as session:
            usecases.reset_password_with_code(session, self.protection, reset.mobile, reset.code, reset.new_password)
        return _done("Password changed; sign in with the new password.")

    @rpc
    def security_question(self, request: dict) -> dict:
        wanted = parse(SecurityQuestionRequest, request)
        with self.db.transaction() as session:
            return {"security_question": usecases.security_question_for(session, self.protection, wanted.login)}

    @rpc
    def reset_password_with_answer(self, request: dict, client_address: str | None = None) -> dict:
        reset = parse(ResetPasswordWithAnswer, request)
        with self.db.transaction() as session:
            usecases.reset_password_with_answer(session, self.protection, reset.login, reset.security_answer,
                                                reset.new_password, client_address)
        return _done("Password changed; sign in with the new password.")

    @rpc
    def lookup_ticket(self, request: dict) -> dict:
        lookup = parse(TicketLookup, request)
        with self.db.transaction() as session:
            outcome = usecases.lookup_ticket(session, self.protection, lookup.mobile, lookup.code)
        return _dump(outcome)
