"""Bearer tokens (JWT, HS256) and the roles they carry. Requests without a token act as ``public``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from credence_common.errors import Unauthorized

ROLES = ("candidate", "institution", "staff", "public")
ISSUER = "credence-gateway"
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str

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

    def issue(self, subject: str, role: str, now: float | None = None) -> dict:
        if role not in ROLES or role == "public":
            raise ValueError(f"cannot issue a token for role {role!r}")
        issued_at = int(now if now is not None else time.time())
        claims = {"sub": subject, "role": role, "iss": ISSUER, "iat": issued_at,
                  "exp": issued_at + self.lifetime_seconds}
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
        return Principal(subject=str(claims["sub"]), role=claims["role"])
