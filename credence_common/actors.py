"""Who is asking: passed by the gateway with every RPC that acts for someone, and checked again by the
service itself, so a service never relies on the gateway alone for access control."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from credence_common.errors import Forbidden, Unauthorized

Role = Literal["candidate", "institution", "staff", "public"]


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str
    role: Role


def as_actor(actor: dict | Actor | None) -> Actor:
    if isinstance(actor, Actor):
        return actor
    if not actor:
        raise Unauthorized("authentication_required", "Sign in first.")
    try:
        return Actor.model_validate(actor)
    except ValueError:
        raise Unauthorized("authentication_required", "Sign in first.") from None


def require_role(actor: dict | Actor | None, *roles: str) -> Actor:
    actor = as_actor(actor)
    if actor.role not in roles:
        raise Forbidden("forbidden", f"A {actor.role} may not do this.")
    return actor


def require_self(actor: dict | Actor | None, candidate_id: str) -> Actor:
    """Only the candidate themself (e.g. online identity confirmation with their own face)."""
    actor = require_role(actor, "candidate")
    if actor.subject != candidate_id:
        raise Forbidden("forbidden", "A candidate may only act on their own record.")
    return actor


def require_self_or_staff(actor: dict | Actor | None, candidate_id: str) -> Actor:
    """A candidate acts only on their own record; authority staff on anyone's."""
    actor = require_role(actor, "candidate", "staff")
    if actor.role == "candidate" and actor.subject != candidate_id:
        raise Forbidden("forbidden", "A candidate may only see and change their own record.")
    return actor
