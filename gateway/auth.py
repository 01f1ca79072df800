"""Bearer tokens (JWT, HS256) and the roles they carry. Requests without a token act as ``public``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from credence_common.contracts.errors import Unauthorized
from credence_common.contracts.staff_roles import STAFF_ROLES
from credence_common.contracts.staff_roles import staff_roles as ordered_staff_roles

ROLES = ("candidate", "institution", "staff", "public")
ISSUER = "credence-gateway"
ALGORITHM = "HS256"
INSTITUTION_CLAIM = "institution_id"
STAFF_ROLES_CLAIM = "staff_roles"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    institution_id: str | None = None  # an institution account's institution (the token's claim)
    # a staff account's roles (credence_common/contracts/staff_roles.py), as identity named them at sign-in or refresh
    staff_roles: frozenset[str] = frozenset()

    @property
    def is_public(self) -> bool:
        return self.role == "public"


PUBLIC = Principal(subject="anonymous", role="public")


class TokenService:
    def __init__(self, secret: str, lifetime_seconds: int = 900):
        if not secret:
            raise ValueError("JWT_SECRET is empty")
        self.secret = secret
        self.lifetime_seconds = lifetime_seconds

    def issue(self, subject: str, role: str, now: float | None = None, institution_id: str | None = None,
              staff_roles: Iterable[str] | None = None) -> dict:
        """``institution_id``: for an institution account (and only for one), the institution identity said it
        belongs to; it travels in the token and then in the signed actor, so payments knows which dues are its
        (an identity that does not say it yet gives a token without it: payments then asks for a new sign-in).
        ``staff_roles``: for a staff account (and only for one), the roles identity said it holds; they travel the
        same way, and each service checks the one an action needs."""
        if role not in ROLES or role == "public":
            raise ValueError(f"cannot issue a token for role {role!r}")
        if institution_id is not None and (role != "institution" or not institution_id):
            raise ValueError("only an institution token names an institution")
        if staff_roles is not None and role != "staff":
            raise ValueError("only a staff token names staff roles")
        issued_at = int(now if now is not None else time.time())
        claims = {"sub": subject, "role": role, "iss": ISSUER, "iat": issued_at,
                  "exp": issued_at + self.lifetime_seconds}
        if institution_id is not None:
            claims[INSTITUTION_CLAIM] = institution_id
        if staff_roles is not None:
            claims[STAFF_ROLES_CLAIM] = list(ordered_staff_roles(staff_roles))
        return {"access_token": jwt.encode(claims, self.secret, algorithm=ALGORITHM),
                "token_type": "bearer", "expires_in": self.lifetime_seconds}

    def principal_from_header(self, authorization: str | None) -> Principal:
        if not authorization:
            return PUBLIC
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("invalid_token", "Use 'Authorization: Bearer <token>'.")
        try:
            claims = jwt.decode(token.strip(), self.secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["sub", "role", "exp", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token_expired", "The token has expired; sign in again.") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid_token", "The token is not valid.") from None
        if claims["role"] not in ROLES or claims["role"] == "public":
            raise Unauthorized("invalid_token", "The token carries an unknown role.")
        institution_id = claims.get(INSTITUTION_CLAIM)
        if institution_id is not None and (claims["role"] != "institution" or not isinstance(institution_id, str)
                                           or not institution_id):
            raise Unauthorized("invalid_token", "The token is not valid.")
        roles = claims.get(STAFF_ROLES_CLAIM)
        if roles is not None and (claims["role"] != "staff" or not isinstance(roles, list)
                                  or not all(isinstance(role, str) and role in STAFF_ROLES for role in roles)):
            raise Unauthorized("invalid_token", "The token is not valid.")
        # an institution token issued before tokens named the institution still signs in; payments then asks
        # for a fresh sign-in (403 institution_not_named) instead of guessing. A staff token from before tokens
        # named staff roles holds none: every duty answers 403 role_required until a fresh sign-in or refresh.
        return Principal(subject=str(claims["sub"]), role=claims["role"], institution_id=institution_id,
                         staff_roles=frozenset(roles or ()))
