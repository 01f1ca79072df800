"""Who is asking: passed by the gateway with every RPC that acts for someone, and checked again by the
service itself, so a service never relies on the gateway alone for access control.

On the bus an actor is a token the gateway signed (credence_common/security/actor_tokens.py), never a bare dict:
whoever can publish to the broker could otherwise claim to be staff. ``as_actor`` is the one place that
checks the signature, with the keys the service was started with (``ActorKeys``, in every service through
``HealthCheck``); a process that was given no keys refuses every actor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from credence_common.contracts.errors import Forbidden, Unauthorized
from credence_common.contracts.staff_roles import StaffRole, staff_roles
from credence_common.security.actor_tokens import REFUSED, ActorVerifier

# "service": another Credence service asking payments for money (services/payments/service.py); the gateway
# never signs it, only a holder of a signing key (the operator's CLI) can.
Role = Literal["candidate", "institution", "staff", "public", "service"]

# One service per process in every deployment; the container sets this at start (ActorKeys.setup).
_verifier: ActorVerifier | None = None


def configure_verifier(verifier: ActorVerifier | None) -> None:
    global _verifier
    _verifier = verifier


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str
    role: Role
    # An institution account's institution (identity's ``institution_id``): who pays for that institution's
    # students (payments' payer id). Only an ``institution`` actor carries it; identity put it in the sign-in.
    institution_id: str | None = None
    # A staff account's roles (credence_common/contracts/staff_roles.py), as identity named them at sign-in: what this
    # member of staff may do. Only a ``staff`` actor carries any; none is no duty at all (a token from before
    # tokens named roles carries none: a fresh sign-in or refresh brings the account's roles).
    staff_roles: frozenset[StaffRole] = frozenset()

    @model_validator(mode="after")
    def _only_institutions_have_an_institution(self) -> Actor:
        if self.institution_id is not None and (self.role != "institution" or not self.institution_id):
            raise ValueError("only an institution actor names an institution")
        if self.staff_roles and self.role != "staff":
            raise ValueError("only a staff actor holds staff roles")
        return self


def as_actor(actor: str | Actor | None) -> Actor:
    """The verified actor of a signed token. A bare dict, a forged or expired token, or any token in a process
    without keys is refused with ``Unauthorized``."""
    if isinstance(actor, Actor):  # already verified in this process
        return actor
    if not actor:
        raise Unauthorized("authentication_required", "Sign in first.")
    if _verifier is None or not isinstance(actor, str):
        raise Unauthorized(*REFUSED)
    try:
        return Actor.model_validate(_verifier.verify(actor))
    except ValueError:
        raise Unauthorized("authentication_required", "Sign in first.") from None


def as_actors(batch_token: str | None, count: int) -> list[Actor]:
    """The verified actors of a batch token (``ActorSigner.sign_batch``), one per item of a batched call of
    ``count`` items; refused as ``as_actor`` refuses, and when the count differs."""
    if not batch_token:
        raise Unauthorized("authentication_required", "Sign in first.")
    if _verifier is None or not isinstance(batch_token, str):
        raise Unauthorized(*REFUSED)
    actors = _verifier.verify_batch(batch_token)
    if len(actors) != count:
        raise Unauthorized(*REFUSED)
    try:
        return [Actor.model_validate(actor) for actor in actors]
    except ValueError:
        raise Unauthorized("authentication_required", "Sign in first.") from None


def require_role(actor: str | Actor | None, *roles: str, staff_roles: Iterable[str] = ()) -> Actor:
    """``roles``: who may ask at all. ``staff_roles``: when a staff actor asks, it must hold one of them (else
    ``403 role_required``); without them any staff actor may (reads that several duties share)."""
    actor = as_actor(actor)
    if actor.role not in roles:
        raise Forbidden("forbidden", f"A {actor.role} may not do this.")
    if actor.role == "staff" and staff_roles:
        require_staff_role(actor, staff_roles)
    return actor


def require_staff(actor: str | Actor | None, *needed: str) -> Actor:
    """A staff actor holding one of the staff roles ``needed`` (credence_common/contracts/staff_roles.py)."""
    if not needed:
        raise TypeError("name the staff role(s) this needs")
    return require_role(actor, "staff", staff_roles=needed)


def require_staff_role(actor, needed: Iterable[str]):
    """``403 role_required`` unless the staff actor (an ``Actor``, or the gateway's ``Principal``) holds one of
    ``needed``; the refusal names them."""
    needed = staff_roles(needed)
    if not actor.staff_roles & set(needed):
        named = " or ".join(needed)
        raise Forbidden("role_required", f"This needs the staff role {named}; an administrator assigns roles, and a "
                        "role assigned counts from your next sign-in.",
                        [{"field": "staff_role", "message": role} for role in needed])
    return actor


def require_self(actor: str | Actor | None, candidate_id: str) -> Actor:
    """Only the candidate themself (e.g. online identity confirmation with their own face)."""
    actor = require_role(actor, "candidate")
    if actor.subject != candidate_id:
        raise Forbidden("forbidden", "A candidate may only act on their own record.")
    return actor


def require_self_or_staff(actor: str | Actor | None, candidate_id: str, staff_roles: Iterable[str] = ()) -> Actor:
    """A candidate acts only on their own record; authority staff (holding one of ``staff_roles``, when named) on
    anyone's."""
    actor = require_role(actor, "candidate", "staff", staff_roles=staff_roles)
    if actor.role == "candidate" and actor.subject != candidate_id:
        raise Forbidden("forbidden", "A candidate may only see and change their own record.")
    return actor
