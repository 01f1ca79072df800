"""The routes that forward to identity: registration, sign-in and sessions, password resets, profiles, identity
confirmation, training institutions, ticket numbers and prior education. Each handler only forwards (gateway/api.py
assembles every service's table)."""

from __future__ import annotations

from pydantic import BaseModel

from credence_common.contracts.identity import (
    CandidateList,
    CandidateView,
    ChangePassword,
    ChoosePrimaryTicket,
    CodeLogin,
    ConfirmIdentityOnline,
    ConfirmIdentityOnSite,
    ConfirmIdentitySession,
    CreateInstitution,
    CreateStaffAccount,
    DecidePriorEducation,
    DevSmsMessages,
    DevSmsQuery,
    Done,
    IdentitySessionView,
    ImportLegacyTickets,
    ImportOutcome,
    InstitutionCredentials,
    InstitutionView,
    Login,
    MergeTickets,
    MobileCodeSent,
    MyTickets,
    PriorEducationView,
    RefreshTokenRequest,
    RegisterCandidate,
    RegisterStudent,
    RequestMobileCode,
    ResetPasswordWithAnswer,
    ResetPasswordWithCode,
    SecurityQuestionRequest,
    SecurityQuestionView,
    SetSecurityQuestion,
    SetStaffRoles,
    StaffAccountList,
    StaffAccountView,
    StaffCredentials,
    StaffRoleChangeList,
    SubmitPriorEducation,
    SubmitPriorEducationProof,
    TicketLookup,
    TicketLookupResult,
    TransferRegion,
)
from gateway.routing import ADMIN, ANY_SIGNED_IN, NOT_REPLAYED, SUPPORT, Call, Route, dump


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None


def request_mobile_code(call: Call):
    return call.rpc.call("identity", "request_mobile_code", dump(call.body), call.client_address)


def register_candidate(call: Call):
    return call.rpc.call("identity", "register_candidate", dump(call.body))


def _tokens(call: Call, principal: dict) -> dict:
    tokens = call.tokens.issue(principal["subject"], principal["role"],
                               institution_id=principal.get("institution_id"),
                               staff_roles=principal.get("staff_roles") if principal["role"] == "staff" else None)
    tokens["refresh_token"] = principal.get("refresh_token")
    return tokens


def login(call: Call):
    return _tokens(call, call.rpc.call("identity", "login", dump(call.body), call.client_address))


def login_with_code(call: Call):
    return _tokens(call, call.rpc.call("identity", "login_with_code", dump(call.body)))


def refresh_session(call: Call):
    return _tokens(call, call.rpc.call("identity", "refresh_session", dump(call.body)))


def logout(call: Call):
    return call.rpc.call("identity", "logout", dump(call.body))


def staff_token(call: Call):
    return _tokens(call, call.rpc.call("identity", "authenticate_staff", dump(call.body), call.client_address))


def reset_password_with_code(call: Call):
    return call.rpc.call("identity", "reset_password_with_code", dump(call.body))


def security_question(call: Call):
    return call.rpc.call("identity", "security_question", dump(call.body))


def reset_password_with_answer(call: Call):
    return call.rpc.call("identity", "reset_password_with_answer", dump(call.body), call.client_address)


def lookup_ticket(call: Call):
    return call.rpc.call("identity", "lookup_ticket", dump(call.body))


def dev_sms_messages(call: Call):
    return call.rpc.call("identity", "dev_sms_messages", dump(call.body))


def my_profile(call: Call):
    return call.rpc.call("identity", "get_candidate", call.actor, call.principal.subject)


def candidate_profile(call: Call):
    return call.rpc.call("identity", "get_candidate", call.actor, call.params["candidate_id"])


def confirm_my_identity(call: Call):
    return call.rpc.call("identity", "confirm_identity", call.actor, call.principal.subject, dump(call.body))


def start_my_identity_session(call: Call):
    return call.rpc.call("identity", "start_identity_session", call.actor, call.principal.subject)


def confirm_my_identity_session(call: Call):
    return call.rpc.call("identity", "confirm_identity_session", call.actor, call.principal.subject,
                         dump(call.body))


def confirm_identity_on_site(call: Call):
    return call.rpc.call("identity", "confirm_identity_on_site", call.actor, call.params["candidate_id"],
                         dump(call.body))


def change_my_password(call: Call):
    return call.rpc.call("identity", "change_password", call.actor, dump(call.body))


def set_my_security_question(call: Call):
    return call.rpc.call("identity", "set_security_question", call.actor, dump(call.body))


def institution_token(call: Call):
    return _tokens(call, call.rpc.call("identity", "authenticate_institution", dump(call.body),
                                       call.client_address))


def create_institution(call: Call):
    return call.rpc.call("identity", "create_institution", call.actor, dump(call.body))


def register_student(call: Call):
    return call.rpc.call("identity", "register_student", call.actor, dump(call.body))


def prior_education_of(call: Call):
    return call.rpc.call("identity", "prior_education_of", call.actor, call.params["candidate_id"])


def institution_students(call: Call):
    return call.rpc.call("identity", "institution_students", call.actor)


def import_legacy_tickets(call: Call):
    return call.rpc.call("identity", "import_legacy_tickets", call.actor, dump(call.body))


def my_tickets(call: Call):
    return call.rpc.call("identity", "my_tickets", call.actor)


def choose_primary_ticket(call: Call):
    return call.rpc.call("identity", "choose_primary_ticket", call.actor, dump(call.body))


def merge_tickets(call: Call):
    return call.rpc.call("identity", "merge_tickets", call.actor, dump(call.body))


def submit_prior_education(call: Call):
    return call.rpc.call("identity", "submit_prior_education", call.actor, dump(call.body))


def submit_prior_education_proof(call: Call):
    return call.rpc.call("identity", "submit_prior_education_proof", call.actor, dump(call.body))


def decide_prior_education(call: Call):
    return call.rpc.call("identity", "decide_prior_education", call.actor, call.params["candidate_id"],
                         dump(call.body))


def transfer_region(call: Call):
    return call.rpc.call("identity", "transfer_region", call.actor, call.params["candidate_id"], dump(call.body))


def create_staff_account(call: Call):
    return call.rpc.call("identity", "create_staff_account", call.actor, dump(call.body))


def staff_accounts(call: Call):
    return call.rpc.call("identity", "staff_accounts", call.actor)


def set_staff_roles(call: Call):
    return call.rpc.call("identity", "set_staff_roles", call.actor, call.params["username"], dump(call.body))


def staff_role_changes(call: Call):
    return call.rpc.call("identity", "staff_role_changes", call.actor, call.params["username"])


ROUTES: tuple[Route, ...] = (
    Route("request_mobile_code", "POST", "/api/v1/mobile-codes",
          "Text a 6-digit code to a mobile number (registration, password reset, ticket look-up)",
          ("public",), request_mobile_code, RequestMobileCode, MobileCodeSent, 202, rate_limited=True,
          tag="candidates"),
    Route("register_candidate", "POST", "/api/v1/candidates", "Pre-register a candidate under their real name",
          ("public",), register_candidate, RegisterCandidate, CandidateView, 201, rate_limited=True,
          tag="candidates"),
    Route("login", "POST", "/api/v1/auth/login", "Sign in with email or mobile and password",
          ("public",), login, Login, TokenResponse, rate_limited=True, tag="auth", replayable=NOT_REPLAYED),
    Route("login_with_code", "POST", "/api/v1/auth/code-login",
          "本人查询: sign in with a code texted for 'sign_in' to your registered mobile", ("public",),
          login_with_code, CodeLogin, TokenResponse, rate_limited=True, tag="auth", replayable=NOT_REPLAYED),
    Route("refresh_session", "POST", "/api/v1/auth/refresh", "Exchange a refresh token for new tokens",
          ("public",), refresh_session, RefreshTokenRequest, TokenResponse, rate_limited=True, tag="auth",
          replayable=NOT_REPLAYED),
    Route("logout", "POST", "/api/v1/auth/logout", "Revoke a refresh token",
          ("public",) + ANY_SIGNED_IN, logout, RefreshTokenRequest, Done, tag="auth"),
    Route("staff_token", "POST", "/api/v1/auth/staff-token", "Sign in as staff",
          ("public",), staff_token, StaffCredentials, TokenResponse, rate_limited=True, tag="auth",
          replayable=NOT_REPLAYED),
    Route("reset_password_with_code", "POST", "/api/v1/password-resets/by-code",
          "Set a new password with a code texted for 'password_reset'", ("public",), reset_password_with_code,
          ResetPasswordWithCode, Done, rate_limited=True, tag="auth"),
    Route("security_question", "POST", "/api/v1/password-resets/security-question",
          "The security question of a login name", ("public",), security_question, SecurityQuestionRequest,
          SecurityQuestionView, rate_limited=True, tag="auth"),
    Route("reset_password_with_answer", "POST", "/api/v1/password-resets/by-answer",
          "Set a new password by answering the security question", ("public",), reset_password_with_answer,
          ResetPasswordWithAnswer, Done, rate_limited=True, tag="auth"),
    Route("lookup_ticket", "POST", "/api/v1/ticket-lookups",
          "A forgotten admission ticket number, with a code texted for 'ticket_lookup'", ("public",),
          lookup_ticket, TicketLookup, TicketLookupResult, rate_limited=True, tag="candidates"),
    Route("dev_sms_messages", "POST", "/api/v1/dev/sms-messages",
          "Development only: texts the dev SMS adapter kept for a number (404 elsewhere)", ("public",),
          dev_sms_messages, DevSmsQuery, DevSmsMessages, tag="development", development_only=True,
          replayable=NOT_REPLAYED),
    Route("my_profile", "GET", "/api/v1/me", "The signed-in candidate's registration (masked)",
          ("candidate",), my_profile, None, CandidateView, tag="candidates"),
    Route("confirm_my_identity", "POST", "/api/v1/me/identity-confirmation",
          "Confirm identity online (ID card image + liveness) and receive the admission ticket number",
          ("candidate",), confirm_my_identity, ConfirmIdentityOnline, CandidateView, tag="candidates"),
    # IDENTITY_VERIFIER=tencent_faceid: a liveness session at the vendor, then its result. Starting one is rate
    # limited (each is billed) and never replayed (its url holds the session's token); the token a confirmation
    # names must be the caller's own, unused session (services/identity/usecases/liveness.py)
    Route("start_my_identity_session", "POST", "/api/v1/me/identity-confirmation/sessions",
          "Start a liveness session at the identity verifier; open its url, which returns with ?token=…",
          ("candidate",), start_my_identity_session, None, IdentitySessionView, 201, rate_limited=True,
          tag="candidates", replayable=NOT_REPLAYED),
    Route("confirm_my_identity_session", "POST", "/api/v1/me/identity-confirmation/sessions/confirmation",
          "Confirm identity with a finished liveness session's token and receive the admission ticket number",
          ("candidate",), confirm_my_identity_session, ConfirmIdentitySession, CandidateView, rate_limited=True,
          tag="candidates"),
    Route("change_my_password", "POST", "/api/v1/me/password", "Change the password (every session must sign in again)",
          ("candidate",), change_my_password, ChangePassword, Done, tag="auth"),
    Route("set_my_security_question", "PUT", "/api/v1/me/security-question",
          "Set the security question used for password reset", ("candidate",), set_my_security_question,
          SetSecurityQuestion, Done, tag="auth"),
    Route("candidate_profile", "GET", "/api/v1/candidates/<candidate_id>",
          "A candidate's registration (staff; an institution for its own students)", ("staff", "institution"),
          candidate_profile, None, CandidateView, staff_roles=SUPPORT, tag="candidates"),
    Route("confirm_identity_on_site", "POST", "/api/v1/candidates/<candidate_id>/identity-confirmation",
          "Approve or reject a candidate's identity on site (staff; an institution for its own students)",
          ("staff", "institution"), confirm_identity_on_site, ConfirmIdentityOnSite, CandidateView,
          staff_roles=SUPPORT, tag="candidates"),
    Route("institution_token", "POST", "/api/v1/auth/institution-token", "Sign in as a training institution's staff",
          ("public",), institution_token, InstitutionCredentials, TokenResponse, rate_limited=True, tag="auth",
          replayable=NOT_REPLAYED),
    Route("create_institution", "POST", "/api/v1/institutions",
          "Register a training institution and its first staff account (staff)", ("staff",), create_institution,
          CreateInstitution, InstitutionView, 201, staff_roles=ADMIN, tag="institutions"),
    Route("institution_students", "GET", "/api/v1/institution/students", "The institution's own candidates",
          ("institution",), institution_students, None, CandidateList, tag="institutions"),
    Route("register_student", "POST", "/api/v1/institution/students",
          "Register a student (with the code texted to the student; the student then sets a password by reset)",
          ("institution",), register_student, RegisterStudent, CandidateView, 201, tag="institutions"),
    Route("prior_education_of", "GET", "/api/v1/candidates/<candidate_id>/prior-education",
          "The latest prior-degree check with its proof reference (staff)", ("staff",), prior_education_of, None,
          PriorEducationView, staff_roles=SUPPORT, tag="candidates"),
    Route("import_legacy_tickets", "POST", "/api/v1/legacy-tickets",
          "Import admission ticket numbers issued before this platform (all or none; staff)", ("staff",),
          import_legacy_tickets, ImportLegacyTickets, ImportOutcome, staff_roles=SUPPORT, tag="candidates"),
    Route("my_tickets", "GET", "/api/v1/me/tickets", "The candidate's primary and other ticket numbers",
          ("candidate",), my_tickets, None, MyTickets, tag="candidates"),
    Route("choose_primary_ticket", "POST", "/api/v1/me/tickets/primary", "Choose which ticket number is primary",
          ("candidate",), choose_primary_ticket, ChoosePrimaryTicket, MyTickets, tag="candidates"),
    Route("merge_tickets", "POST", "/api/v1/me/ticket-merges",
          "Merge other ticket numbers into the primary one (their results move too)", ("candidate",),
          merge_tickets, MergeTickets, MyTickets, tag="candidates"),
    Route("submit_prior_education", "POST", "/api/v1/me/prior-education",
          "Degree-upgrade candidates: have the prior degree checked against the registry", ("candidate",),
          submit_prior_education, SubmitPriorEducation, CandidateView, tag="candidates"),
    Route("submit_prior_education_proof", "POST", "/api/v1/me/prior-education/proof",
          "Upload a proof of the prior degree when the registry has no record", ("candidate",),
          submit_prior_education_proof, SubmitPriorEducationProof, CandidateView, tag="candidates"),
    Route("decide_prior_education", "POST", "/api/v1/candidates/<candidate_id>/prior-education/decision",
          "Approve or reject an uploaded prior-degree proof (staff)", ("staff",), decide_prior_education,
          DecidePriorEducation, CandidateView, staff_roles=SUPPORT, tag="candidates"),
    Route("transfer_region", "POST", "/api/v1/candidates/<candidate_id>/transfer",
          "Move a candidate's exam record to another exam region (转考; staff)", ("staff",), transfer_region,
          TransferRegion, CandidateView, staff_roles=SUPPORT, tag="candidates"),
    Route("create_staff_account", "POST", "/api/v1/staff-accounts",
          "Create another staff account with its roles (none by default: it may sign in and do nothing yet)",
          ("staff",), create_staff_account, CreateStaffAccount, StaffAccountView, 201, staff_roles=ADMIN, tag="auth"),
    Route("staff_accounts", "GET", "/api/v1/staff-accounts", "Every staff account with its roles",
          ("staff",), staff_accounts, None, StaffAccountList, staff_roles=ADMIN, tag="auth"),
    Route("set_staff_roles", "PUT", "/api/v1/staff-accounts/<username>/roles",
          "Set an account's roles, with a reason (recorded; counts from its next sign-in or refresh; not your own, "
          "and the last admin keeps admin)", ("staff",), set_staff_roles, SetStaffRoles, StaffAccountView,
          staff_roles=ADMIN, tag="auth"),
    Route("staff_role_changes", "GET", "/api/v1/staff-accounts/<username>/role-changes",
          "Every change of an account's roles: who, when, before, after, why", ("staff",), staff_role_changes,
          None, StaffRoleChangeList, staff_roles=ADMIN, tag="auth"),
)
