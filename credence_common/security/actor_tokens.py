"""Signed actors: the gateway (and the operator's CLI) vouch for who asks, and every service checks it.

A service cannot tell who published an RPC on the broker, so an actor dict (``{"subject", "role"}``) proves
nothing: whoever reaches the broker could claim to be staff. The gateway therefore sends the actor it
authenticated as a short-lived JWT signed with Ed25519 (``EdDSA``). Services hold only public keys, so a
service that is broken into still cannot mint staff actors. The token's ``kid`` header names the key, and a
service accepts every key in its list: to rotate, add the new public key to every service, then switch the
gateway to the new private key, then drop the old public key once the last token signed with it expired.

Key settings are ``<key id>=<material>`` (several in ``ACTOR_VERIFY_KEYS``, comma-separated). The material is
the raw 32-byte Ed25519 key in unpadded base64url (``credence actor-keys`` prints a new pair), or, in
development only, a ``dev-insecure-...`` phrase from which the key pair is derived; staging and production
refuse such phrases at start-up (credence_common/config.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.types import Options

from credence_common.contracts.errors import Unauthorized
from credence_common.security.secret_names import INSECURE_DEFAULT_PREFIX

ALGORITHM = "EdDSA"
AUDIENCE = "credence-services"
# A batch token vouches for the actors of a batched call, in order (``ActorSigner.sign_batch``); its own audience,
# so that neither kind of token is ever taken for the other.
BATCH_AUDIENCE = "credence-services-batch"
DEFAULT_LIFETIME_SECONDS = 90
# The claim naming an institution account's institution (credence_common/security/actors.py ``Actor.institution_id``).
INSTITUTION_CLAIM = "institution_id"
# The claim naming a staff account's roles (credence_common/contracts/staff_roles.py; ``Actor.staff_roles``): a list.
STAFF_ROLES_CLAIM = "staff_roles"
# clocks of the gateway's and the services' hosts may differ by a little; not by a token's lifetime
LEEWAY_SECONDS = 5
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
DEVELOPMENT_SIGNING_KEY = "dev=dev-insecure-actor-signing-key"
DEVELOPMENT_VERIFY_KEYS = DEVELOPMENT_SIGNING_KEY  # the public half is derived from the same phrase


class KeySpecError(ValueError):
    """A key setting that cannot be read: said at start-up, naming the key id but never the material."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_key(key_id: str, material: str) -> bytes:
    if material.startswith(INSECURE_DEFAULT_PREFIX):
        return hashlib.sha256(material.encode("utf-8")).digest()
    try:
        raw = base64.urlsafe_b64decode(material + "=" * (-len(material) % 4))
    except (binascii.Error, ValueError):
        raise KeySpecError(f"actor key {key_id!r} is not base64url") from None
    if len(raw) != 32:
        raise KeySpecError(f"actor key {key_id!r} is not a 32-byte Ed25519 key")
    return raw


def parse_key_spec(spec: str) -> list[tuple[str, str]]:
    """``"k2=...,k1=..."`` -> [(key id, material), ...] in the given order."""
    entries: list[tuple[str, str]] = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        key_id, separator, material = part.partition("=")
        key_id, material = key_id.strip(), material.strip()
        if not separator or not KEY_ID_PATTERN.fullmatch(key_id) or not material:
            raise KeySpecError("an actor key is '<key id>=<key>' with a key id of 1 to 32 of A-Z a-z 0-9 _ -")
        if any(known == key_id for known, _ in entries):
            raise KeySpecError(f"actor key id {key_id!r} appears twice")
        entries.append((key_id, material))
    if not entries:
        raise KeySpecError("no actor key is configured")
    return entries


def private_key(key_id: str, material: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(_raw_key(key_id, material))


def public_key(key_id: str, material: str) -> ed25519.Ed25519PublicKey:
    if material.startswith(INSECURE_DEFAULT_PREFIX):
        return private_key(key_id, material).public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(_raw_key(key_id, material))


def new_key_pair(key_id: str) -> tuple[str, str]:
    """(signing setting, verifying entry) for a fresh key: ``ACTOR_SIGNING_KEY`` and one ``ACTOR_VERIFY_KEYS``
    entry."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise KeySpecError("a key id is 1 to 32 of A-Z a-z 0-9 _ -")
    key = ed25519.Ed25519PrivateKey.generate()
    secret = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{key_id}={_b64encode(secret)}", f"{key_id}={_b64encode(public)}"


@dataclass(frozen=True)
class ActorSigner:
    """Held by the gateway and the CLI: one private key, the one that signs now."""

    key_id: str
    key: ed25519.Ed25519PrivateKey
    lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS
    issuer: str = "gateway"

    @classmethod
    def from_spec(cls, spec: str, lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
                  issuer: str = "gateway") -> ActorSigner:
        entries = parse_key_spec(spec)
        if len(entries) != 1:
            raise KeySpecError("the actor signing key is one '<key id>=<key>'")
        if lifetime_seconds <= 0:
            raise KeySpecError("an actor token lives for a positive number of seconds")
        key_id, material = entries[0]
        return cls(key_id, private_key(key_id, material), lifetime_seconds, issuer)

    def sign(self, subject: str, role: str, now: float | None = None, institution_id: str | None = None,
             staff_roles: Iterable[str] | None = None) -> str:
        """``institution_id``: an institution account's institution, vouched for with the rest (payments pays and
        lists dues as that institution). ``staff_roles``: a staff account's roles, as identity named them at
        sign-in (each service checks the one an action needs)."""
        issued_at = int(time.time() if now is None else now)
        claims = {"sub": subject, "role": role, "aud": AUDIENCE, "iss": self.issuer, "iat": issued_at,
                  "exp": issued_at + self.lifetime_seconds}
        if institution_id is not None:
            claims[INSTITUTION_CLAIM] = institution_id
        if staff_roles is not None:
            claims[STAFF_ROLES_CLAIM] = sorted(staff_roles)
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def sign_batch(self, actors: list[tuple[str, str]], now: float | None = None) -> str:
        """One token for the actors of a batched call (``[(subject, role), ...]``, in the order of its items):
        the gateway batches reads that arrive together, and one signature and one check per batch cost a
        fraction of one per item (Ed25519 verification was half of scoring's CPU on release-day reads,
        docs/performance.md "Result reading")."""
        issued_at = int(time.time() if now is None else now)
        claims = {"actors": [[subject, role] for subject, role in actors], "aud": BATCH_AUDIENCE, "iss": self.issuer,
                  "iat": issued_at, "exp": issued_at + self.lifetime_seconds}
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.key_id})


REFUSED = ("actor_not_signed", "The caller is not vouched for: the services accept only actors the gateway "
                               "signed.")


class ActorVerifier:
    """Held by every service: the public keys whose signatures it accepts, by key id."""

    def __init__(self, keys: dict[str, ed25519.Ed25519PublicKey]):
        if not keys:
            raise KeySpecError("no actor key is configured")
        self._keys = dict(keys)

    @classmethod
    def from_spec(cls, spec: str) -> ActorVerifier:
        return cls({key_id: public_key(key_id, material) for key_id, material in parse_key_spec(spec)})

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, token: str, now: float | None = None) -> dict:
        """``{"subject", "role"}`` (and ``institution_id``, ``staff_roles`` when the token carries them) of a token
        one of the keys signed and that has not expired; else ``Unauthorized`` (the same answer for every failure:
        a prober learns nothing about the keys)."""
        claims = self._claims(token, AUDIENCE, ["sub", "role", "aud", "iat", "exp"], now)
        actor = {"subject": claims["sub"], "role": claims["role"]}
        if INSTITUTION_CLAIM in claims:
            if not isinstance(claims[INSTITUTION_CLAIM], str):
                raise Unauthorized(*REFUSED)
            actor["institution_id"] = claims[INSTITUTION_CLAIM]
        if STAFF_ROLES_CLAIM in claims:
            roles = claims[STAFF_ROLES_CLAIM]
            if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
                raise Unauthorized(*REFUSED)
            actor["staff_roles"] = roles
        return actor

    def verify_batch(self, token: str, now: float | None = None) -> list[dict]:
        """The ``{"subject", "role"}`` of each actor of a batch token (``ActorSigner.sign_batch``), in order;
        ``Unauthorized`` as ``verify`` for anything else, a single actor's token included."""
        actors = self._claims(token, BATCH_AUDIENCE, ["actors", "aud", "iat", "exp"], now)["actors"]
        if not isinstance(actors, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
                for pair in actors):
            raise Unauthorized(*REFUSED)
        return [{"subject": subject, "role": role} for subject, role in actors]

    def _claims(self, token: str, audience: str, required: list[str], now: float | None) -> dict:
        if not isinstance(token, str) or not token:
            raise Unauthorized(*REFUSED)
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid")) if header.get("alg") == ALGORITHM else None
            if key is None:
                raise Unauthorized(*REFUSED)
            options: Options = {"require": required}
            if now is not None:  # tests: judge the times at a given moment (PyJWT reads the clock itself)
                options["verify_exp"] = options["verify_iat"] = False
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, leeway=LEEWAY_SECONDS,
                                options=options)
        except jwt.PyJWTError:
            raise Unauthorized(*REFUSED) from None
        if now is not None and not claims["iat"] - LEEWAY_SECONDS <= now <= claims["exp"] + LEEWAY_SECONDS:
            raise Unauthorized(*REFUSED)
        return claims
