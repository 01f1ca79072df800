"""``Idempotency-Key``: a client that retries an unsafe request with the same key gets the first answer
back, and the effect happens once, even if the first attempt timed out or the service crashed after it.

The gateway turns (caller, route, key) into a record key and (method, path, body) into a fingerprint and
passes both in the RPC's context headers. In the service, the first transaction the called entrypoint opens
also inserts the record (``idempotency_records``, one table in each service's database): so the record
exists exactly when the effect was committed. When the entrypoint returns, its answer (or its refusal) is
stored on the record before the reply leaves. A retry finds the record and gets the stored answer without
running again; a retry while the first attempt is still running, or after a crash between its commit and the
stored answer, gets ``409 idempotent_request_pending`` (the effect is there; nothing is done twice); the same
key with a different request gets ``422 idempotency_key_reused``.

What is kept is no use to someone who reads the database (docs/security.md): the gateway derives an answer
key from its own secret, the caller, the route and the client's Idempotency-Key, sends it along with the
record key and never stores it; the service encrypts the stored answer with it (AES-256-GCM) and keeps only a
keyed fingerprint of the request (a login's body holds a password). A record lives
``IDEMPOTENCY_RECORD_TTL_HOURS`` (24): an older one is never replayed (the request runs as a new one) and the
``prune_idempotency_records`` timer of every service deletes it. Routes whose answer is a credential (a
token, a one-time code) are not replayable at all: a retried sign-in is a fresh sign-in (gateway/routes/identity.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, CredenceError, InvalidInput, refusal_from_wire, refusal_to_wire
from credence_common.persistence.types import UTCDateTime
from credence_common.security.crypto import derive_key

RECORD_HEADER = "idempotency_record"
FINGERPRINT_HEADER = "idempotency_fingerprint"
ANSWER_KEY_HEADER = "idempotency_answer_key"
MAX_KEY_LENGTH = 200
DEFAULT_RECORD_TTL_HOURS = 24
ANSWER_FORMAT = "v1:"  # base64(nonce || AES-256-GCM ciphertext); anything else is not replayed
ANSWER_KEY_INFO = b"credence-idempotency-answers/v1"

metadata = MetaData()
IDEMPOTENCY_RECORDS = Table(
    "idempotency_records", metadata,
    Column("record_key", String(64), primary_key=True),
    Column("target", String(120), primary_key=True),  # service.method: one route may call several
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("answer_json", Text, nullable=True),  # {"result": ...} or {"refusal": ...}, encrypted; null until stored
)
# the prune timer deletes by age; a service whose migrations create it asks for it (messaging_models)
CREATED_AT_INDEX = "ix_idempotency_records_created_at"


def record_ttl(config=None) -> timedelta:
    """How long a stored answer may be replayed: ``IDEMPOTENCY_RECORD_TTL_HOURS`` of the service's config or
    environment (each service is its own process, so each may set its own), 24 hours by default."""
    value = (config or {}).get("IDEMPOTENCY_RECORD_TTL_HOURS") or os.environ.get("IDEMPOTENCY_RECORD_TTL_HOURS")
    hours = float(value) if value not in (None, "") else DEFAULT_RECORD_TTL_HOURS
    if hours <= 0:
        raise ValueError("IDEMPOTENCY_RECORD_TTL_HOURS must be positive")
    return timedelta(hours=hours)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


def gateway_key(secret: str) -> bytes:
    """The gateway's key for answer keys and fingerprints, derived from its token secret (HKDF, its own label):
    without it, a database reader cannot test guesses of a weak Idempotency-Key or of a password in a body."""
    return derive_key(secret, ANSWER_KEY_INFO)


def request_headers(key: str, caller: str, route: str, method: str, path: str, body: bytes,
                    secret_key: bytes) -> dict:
    """What the gateway puts in the RPC context for an unsafe request carrying ``Idempotency-Key``: the record
    key (a hash), the request's fingerprint (keyed) and the key that encrypts the stored answer (never stored:
    only a retry with the same Idempotency-Key, from the same caller, brings it again)."""
    if not valid_key(key):
        raise InvalidInput("invalid_idempotency_key", f"Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable ASCII "
                                                      "characters.", [{"field": "Idempotency-Key",
                                                                       "message": "invalid"}])
    answer_key = hmac.new(secret_key, _digest("answer", caller, route, key).encode(), hashlib.sha256).digest()
    fingerprint = hmac.new(answer_key, _digest(method, path, hashlib.sha256(body).hexdigest()).encode(),
                           hashlib.sha256).hexdigest()
    return {RECORD_HEADER: _digest(caller, route, key), FINGERPRINT_HEADER: fingerprint,
            ANSWER_KEY_HEADER: base64.b64encode(answer_key).decode("ascii")}


def seal_answer(answer: dict, answer_key: bytes, record_key: str, target: str) -> str:
    nonce = secrets.token_bytes(12)
    plaintext = json.dumps(answer, ensure_ascii=False, default=str).encode("utf-8")
    sealed = AESGCM(answer_key).encrypt(nonce, plaintext, f"{record_key}|{target}".encode())
    return ANSWER_FORMAT + base64.b64encode(nonce + sealed).decode("ascii")


def open_answer(stored: str, answer_key: bytes, record_key: str, target: str) -> dict | None:
    """The stored answer, or None when it cannot be read: stored in clear before answers were encrypted, or
    sealed under another gateway secret. Such an answer is not replayed."""
    if not stored.startswith(ANSWER_FORMAT):
        return None
    try:
        raw = base64.b64decode(stored[len(ANSWER_FORMAT):], validate=True)
        plaintext = AESGCM(answer_key).decrypt(raw[:12], raw[12:], f"{record_key}|{target}".encode())
    except (binascii.Error, ValueError, InvalidTag):
        return None
    return json.loads(plaintext)


def prune(session: Session, now: datetime, ttl: timedelta) -> int:
    """Deletes the records older than ``ttl``. One statement: run every few minutes it deletes a few minutes'
    worth of rows (by ``created_at``'s index), and replicas pruning at once delete each row once between them."""
    return session.execute(delete(IDEMPOTENCY_RECORDS).where(IDEMPOTENCY_RECORDS.c.created_at < now - ttl)).rowcount


class StoredAnswer(Exception):
    """Raised inside the entrypoint to answer with what the first attempt answered (see ``IdempotentRpc``)."""

    def __init__(self, answer: dict):
        super().__init__("replayed")
        self.answer = answer


@dataclass
class IdempotentCall:
    record_key: str
    fingerprint: str
    target: str
    answer_key: bytes = b""
    ttl: timedelta = timedelta(hours=DEFAULT_RECORD_TTL_HOURS)
    attempted: bool = False  # the entrypoint opened its first transaction
    claimed: bool = False  # ... and this attempt took the key, so it stores the answer
    claimed_at: datetime | None = None  # the record's created_at as this attempt inserted it: which attempt's it is

    @classmethod
    def from_worker(cls, worker_ctx, ttl: timedelta | None = None) -> IdempotentCall | None:
        data = worker_ctx.data or {}
        record, fingerprint, answer_key = (data.get(RECORD_HEADER), data.get(FINGERPRINT_HEADER),
                                           data.get(ANSWER_KEY_HEADER))
        if not record or not fingerprint or not answer_key:
            return None  # without the answer key nothing could be stored safely: an ordinary call
        try:
            key = base64.b64decode(str(answer_key), validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(key) != 32:
            return None
        return cls(str(record), str(fingerprint),
                   f"{worker_ctx.container.service_name}.{worker_ctx.entrypoint.method_name}", key,
                   ttl or timedelta(hours=DEFAULT_RECORD_TTL_HOURS))

    def claim(self, session: Session, now: datetime | None = None) -> None:
        """In the entrypoint's first transaction: replay, refuse, or take the key for this attempt."""
        self.attempted = True
        now = now or utcnow()
        where = (IDEMPOTENCY_RECORDS.c.record_key == self.record_key, IDEMPOTENCY_RECORDS.c.target == self.target)
        found = session.execute(select(IDEMPOTENCY_RECORDS.c.fingerprint, IDEMPOTENCY_RECORDS.c.answer_json,
                                       IDEMPOTENCY_RECORDS.c.created_at).where(*where)).first()
        if found is not None and found.created_at <= now - self.ttl:
            # Expired: forgotten, as if pruned already, and the request runs as a new one. Of two concurrent
            # retries, the second's insert below meets the first's new record: 409 concurrent_change, no effect.
            session.execute(delete(IDEMPOTENCY_RECORDS).where(*where))
            found = None
        if found is None:
            session.execute(insert(IDEMPOTENCY_RECORDS).values(
                record_key=self.record_key, target=self.target, fingerprint=self.fingerprint, created_at=now))
            self.claimed = True  # if this transaction rolls back, so does the record, and nothing is stored
            self.claimed_at = now
            return
        if not hmac.compare_digest(found.fingerprint, self.fingerprint):
            raise InvalidInput("idempotency_key_reused", "This Idempotency-Key was used for a different request; "
                                                         "use a new key for a new request.")
        answer = open_answer(found.answer_json, self.answer_key, self.record_key, self.target) \
            if found.answer_json is not None else None
        if answer is None:
            raise Conflict("idempotent_request_pending", "A request with this Idempotency-Key took effect but its "
                                                         "answer is not known yet; look the result up instead.")
        raise StoredAnswer(answer)

    def claim_is_on(self, connection) -> bool:
        """Whether the record this attempt inserted is on the database (not a later attempt's: its created_at
        differs). It was inserted in the attempt's first transaction, so it is there exactly when that
        transaction committed: the way to learn the outcome of a ``COMMIT`` whose answer was lost."""
        return connection.execute(select(IDEMPOTENCY_RECORDS.c.target).where(
            IDEMPOTENCY_RECORDS.c.record_key == self.record_key, IDEMPOTENCY_RECORDS.c.target == self.target,
            IDEMPOTENCY_RECORDS.c.created_at == self.claimed_at)).first() is not None

    def store(self, session: Session, result=None, error: CredenceError | None = None) -> None:
        answer = {"refusal": refusal_to_wire(error)} if error is not None else {"result": result}
        session.execute(update(IDEMPOTENCY_RECORDS).where(
            IDEMPOTENCY_RECORDS.c.record_key == self.record_key, IDEMPOTENCY_RECORDS.c.target == self.target)
            .values(answer_json=seal_answer(answer, self.answer_key, self.record_key, self.target)))


def replay(answer: dict):
    """The stored answer as the entrypoint's outcome: (result, error)."""
    if "refusal" in answer:
        return None, refusal_from_wire(answer["refusal"])
    return answer.get("result"), None


def forget_attempt(db) -> None:
    """Drop this attempt's Idempotency-Key record, claimed by the entrypoint's first transaction, when the work is
    done between transactions and ended in no answer worth replaying (a vendor's outage, a page not finished): a
    retry with the same key then does the work again instead of getting the stored 503 for a day. ``db`` is the
    service's Database provider; nothing happens outside an idempotent call or when this attempt did not claim."""
    call = getattr(db, "idempotent_call", None)
    if call is None or not call.claimed:
        return
    with db.transaction() as session:
        session.execute(delete(IDEMPOTENCY_RECORDS).where(IDEMPOTENCY_RECORDS.c.record_key == call.record_key,
                                                          IDEMPOTENCY_RECORDS.c.target == call.target))
    call.claimed = False
