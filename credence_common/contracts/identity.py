"""RPC and HTTP schemas of the identity service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from credence_common.contracts.staff_roles import STAFF_ROLES as STAFF_ROLE_NAMES
from credence_common.contracts.staff_roles import StaffRole, staff_roles
from credence_common.contracts.tickets import TicketNumber

Strict = ConfigDict(extra="forbid", str_strip_whitespace=True)
CodePurpose = Literal["registration", "password_reset", "ticket_lookup", "sign_in"]
Password = Field(min_length=1, max_length=256, description="8 to 64 characters; common passwords are refused")
# A fixed list: with free-text questions, the question shown for a login name would tell a real account
# from an unknown one (which gets a decoy from this same list).
SecurityQuestion = Literal[
    "What was the name of your first school?",
    "In which city were your parents married?",
    "What was your childhood nickname?",
    "What is the name of the street you grew up on?",
    "What was the name of your first teacher?",
    "What was the first book you loved?",
]
SECURITY_QUESTIONS: tuple[str, ...] = get_args(SecurityQuestion)
Answer = Field(min_length=3, max_length=100)


class RequestMobileCode(BaseModel):
    model_config = Strict

    mobile: str = Field(min_length=1, max_length=20, description="Mainland mobile number")
    purpose: CodePurpose


class MobileCodeSent(BaseModel):
    status: Literal["sent"] = "sent"
    expires_in: int = Field(description="Seconds the code stays valid")
    message: str


class RegisterCandidate(BaseModel):
    model_config = Strict

    full_name: str = Field(min_length=2, max_length=40, description="Real name as on the resident ID card")
    resident_id_number: str = Field(min_length=18, max_length=18, description="18-character resident ID number")
    mobile: str = Field(min_length=1, max_length=20, description="Mainland mobile number; also a login name")
    mobile_code: str = Field(min_length=6, max_length=6, description="The 6-digit code texted for 'registration'")
    email: str = Field(min_length=3, max_length=254, description="Email address; also a login name")
    password: str = Password
    exam_region: str = Field(pattern=r"^[0-9]{2}$", description="Two-digit exam region the candidate chooses")
    security_question: SecurityQuestion | None = None
    security_answer: str | None = Field(default=None, min_length=3, max_length=100)
    degree_upgrade: bool = Field(default=False, description="Degree-upgrade candidate: a prior degree is checked")


class RegisterStudent(BaseModel):
    """An institution registers its student. No password: the institution must never know it; the
    student sets one with a password-reset code texted to their own mobile."""

    model_config = Strict

    full_name: str = Field(min_length=2, max_length=40)
    resident_id_number: str = Field(min_length=18, max_length=18)
    mobile: str = Field(min_length=1, max_length=20)
    mobile_code: str = Field(min_length=6, max_length=6, description="The student's 'registration' code")
    email: str = Field(min_length=3, max_length=254)
    exam_region: str = Field(pattern=r"^[0-9]{2}$")
    degree_upgrade: bool = False


CandidateStatus = Literal["pre_registered", "confirmed", "rejected"]


class CandidateView(BaseModel):
    candidate_id: str
    full_name: str
    resident_id_number_masked: str
    mobile_masked: str
    email_masked: str
    exam_region: str
    status: CandidateStatus
    rejection_reason: str | None = None
    ticket_number: TicketNumber | None = None
    confirmation_method: Literal["online", "on_site"] | None = None
    institution_id: str | None = None
    prior_education_status: Literal["not_required", "required", "verified", "proof_required", "proof_submitted",
                                    "rejected"] = "not_required"
    has_security_question: bool = False
    registered_at: datetime
    confirmed_at: datetime | None = None


class ConfirmIdentityOnline(BaseModel):
    model_config = Strict

    method: Literal["online"] = "online"
    id_card_image_ref: str = Field(min_length=1, max_length=200, description="Reference of the uploaded ID card image")
    liveness_ref: str = Field(min_length=1, max_length=200, description="Reference of the liveness/face video")


class IdentitySessionView(BaseModel):
    """A liveness session opened at the online identity verifier: open ``url`` (the vendor's page); when it sends
    the candidate back (to the configured page, with ``token=<biz_token>``), confirm with that token."""

    session_id: str
    url: str = Field(description="The vendor's liveness page to open; it returns to our page with ?token=…")
    expires_at: datetime = Field(description="After this the session's result can no longer be fetched")
    verifier: str


class ConfirmIdentitySession(BaseModel):
    model_config = Strict

    biz_token: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$",
                           description="The token the vendor's page returned with (it must be one of this "
                                       "candidate's own sessions, not used before)")


class ConfirmIdentityOnSite(BaseModel):
    model_config = Strict

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=200, description="Required when rejecting")


class Login(BaseModel):
    model_config = Strict

    login: str = Field(min_length=1, max_length=254, description="Email address or mobile number")
    password: str = Field(min_length=1, max_length=256)


class RefreshTokenRequest(BaseModel):
    model_config = Strict

    refresh_token: str = Field(min_length=1, max_length=200)


class ChangePassword(BaseModel):
    model_config = Strict

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Password


class SetSecurityQuestion(BaseModel):
    model_config = Strict

    current_password: str = Field(min_length=1, max_length=256)
    security_question: SecurityQuestion
    security_answer: str = Answer


class ResetPasswordWithCode(BaseModel):
    model_config = Strict

    mobile: str = Field(min_length=1, max_length=20)
    code: str = Field(min_length=6, max_length=6)
    new_password: str = Password


class SecurityQuestionRequest(BaseModel):
    model_config = Strict

    login: str = Field(min_length=1, max_length=254)


class SecurityQuestionView(BaseModel):
    security_question: str


class ResetPasswordWithAnswer(BaseModel):
    model_config = Strict

    login: str = Field(min_length=1, max_length=254)
    security_answer: str = Field(min_length=1, max_length=100)
    new_password: str = Password


class TicketLookup(BaseModel):
    model_config = Strict

    mobile: str = Field(min_length=1, max_length=20)
    code: str = Field(min_length=6, max_length=6)


class CodeLogin(BaseModel):
    """本人查询: the holder signs in with a code texted (purpose ``sign_in``) to their registered mobile."""

    model_config = Strict

    mobile: str = Field(min_length=1, max_length=20)
    code: str = Field(min_length=6, max_length=6)


class TicketLookupResult(BaseModel):
    full_name: str
    status: CandidateStatus
    ticket_number: TicketNumber | None


class StaffCredentials(BaseModel):
    model_config = Strict

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class AuthenticatedPrincipal(BaseModel):
    subject: str
    role: Literal["candidate", "institution", "staff"]
    display_name: str
    refresh_token: str | None = None
    # an institution account's institution: the gateway puts it in the token, and payments pays as it
    institution_id: str | None = None
    # a staff account's roles (credence_common/contracts/staff_roles.py): the gateway puts them in the token, and each
    # service checks the one an action needs; None for everyone else
    staff_roles: list[StaffRole] | None = None


class Done(BaseModel):
    status: Literal["done"] = "done"
    message: str


class DevSmsQuery(BaseModel):
    model_config = Strict

    mobile: str = Field(min_length=1, max_length=20)


class DevSmsMessages(BaseModel):
    messages: list[str]


class CandidateList(BaseModel):
    candidates: list[CandidateView]


class CreateInstitution(BaseModel):
    model_config = Strict

    name: str = Field(min_length=2, max_length=120)
    admin_username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z0-9._-]+$")
    admin_password: str = Password


class InstitutionView(BaseModel):
    institution_id: str
    name: str
    admin_username: str


class InstitutionCredentials(BaseModel):
    model_config = Strict

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LegacyTicketLine(BaseModel):
    model_config = Strict

    ticket_number: TicketNumber
    resident_id_number: str = Field(min_length=18, max_length=18)
    exam_region: str = Field(pattern=r"^[0-9]{2}$")


class ImportLegacyTickets(BaseModel):
    model_config = Strict

    tickets: list[LegacyTicketLine] = Field(min_length=1, max_length=5000)


class ImportOutcome(BaseModel):
    imported: int
    linked_to_confirmed_candidates: int


class HeldTicket(BaseModel):
    ticket_number: TicketNumber
    status: Literal["held", "merged"]
    merged_into: TicketNumber | None = None


class MyTickets(BaseModel):
    primary_ticket_number: TicketNumber | None
    other_tickets: list[HeldTicket]


class ChoosePrimaryTicket(BaseModel):
    model_config = Strict

    ticket_number: TicketNumber


class MergeTickets(BaseModel):
    model_config = Strict

    # plain str: a malformed number is answered like any number that is not yours (422 not_your_ticket), as before
    ticket_numbers: list[str] = Field(min_length=1, max_length=20)


class SubmitPriorEducation(BaseModel):
    model_config = Strict

    degree_certificate_number: str = Field(pattern=r"^[0-9]{18}$",
                                           description="18-digit number of the prior degree certificate")


class SubmitPriorEducationProof(BaseModel):
    model_config = Strict

    proof_ref: str = Field(min_length=1, max_length=200, description="Reference of the uploaded proof")


class DecidePriorEducation(BaseModel):
    model_config = Strict

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=200)


class PriorEducationView(BaseModel):
    candidate_id: str
    status: str
    registry_result: Literal["found", "not_found"] | None = None
    proof_ref: str | None = None
    decision: Literal["approved", "rejected"] | None = None
    reason: str | None = None
    checked_at: datetime | None = None


def _roles_once_in_order(roles: list[str]) -> list[str]:
    return list(staff_roles(roles))


# Any: a FieldInfo shared by two models; pydantic types Field() as the value of the field it is the default of,
# which no single annotation here can be for both (list[StaffRole] is what each model declares)
StaffRoles: Any = Field(default_factory=list, max_length=len(STAFF_ROLE_NAMES),
                   description="The account's staff roles: " + ", ".join(STAFF_ROLE_NAMES))


class CreateStaffAccount(BaseModel):
    model_config = Strict

    username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z0-9._-]+$")
    display_name: str = Field(min_length=1, max_length=80)
    password: str = Password
    # none by default: an account may sign in and do nothing until an admin gives it a duty
    roles: list[StaffRole] = StaffRoles

    _ordered = field_validator("roles")(_roles_once_in_order)


class StaffAccountView(BaseModel):
    username: str
    display_name: str
    roles: list[StaffRole] = Field(default_factory=list)


class StaffAccountList(BaseModel):
    accounts: list[StaffAccountView]


class SetStaffRoles(BaseModel):
    """The account's whole set of roles from now on (an empty list takes every duty away)."""

    model_config = Strict

    roles: list[StaffRole] = StaffRoles
    reason: str = Field(min_length=3, max_length=200, description="Why, for the record of role changes")

    _ordered = field_validator("roles")(_roles_once_in_order)


class StaffRoleChangeView(BaseModel):
    username: str
    changed_by: str
    roles_before: list[StaffRole]
    roles_after: list[StaffRole]
    reason: str
    changed_at: datetime


class StaffRoleChangeList(BaseModel):
    changes: list[StaffRoleChangeView]


class TransferRegion(BaseModel):
    model_config = Strict

    to_region: str = Field(pattern=r"^[0-9]{2}$", description="The exam region the record moves to")
    reason: str = Field(min_length=3, max_length=200)
