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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Column, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.orm import Session

from credence_common.errors import Conflict, CredenceError, InvalidInput, refusal_from_wire, refusal_to_wire
from credence_common.events import utcnow
from credence_common.types import UTCDateTime

RECORD_HEADER = "idempotency_record"
FINGERPRINT_HEADER = "idempotency_fingerprint"
MAX_KEY_LENGTH = 200

metadata = MetaData()
IDEMPOTENCY_RECORDS = Table(
    "idempotency_records", metadata,
    Column("record_key", String(64), primary_key=True),
    Column("target", String(120), primary_key=True),  # service.method: one route may call several
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("answer_json", Text, nullable=True),  # {"result": ...} or {"refusal": ...}; null until stored
)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


def request_headers(key: str, caller: str, route: str, method: str, path: str, body: bytes) -> dict:
    """What the gateway puts in the RPC context for an unsafe request carrying ``Idempotency-Key``."""
    if not valid_key(key):
        raise InvalidInput("invalid_idempotency_key", f"Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable ASCII "
                                                      "characters.", [{"field": "Idempotency-Key",
                                                                       "message": "invalid"}])
    return {RECORD_HEADER: _digest(caller, route, key),
            FINGERPRINT_HEADER: _digest(method, path, hashlib.sha256(body).hexdigest())}


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
    attempted: bool = False  # the entrypoint opened its first transaction
    claimed: bool = False  # ... and this attempt took the key, so it stores the answer

    @classmethod
    def from_worker(cls, worker_ctx) -> IdempotentCall | None:
        data = worker_ctx.data or {}
        record, fingerprint = data.get(RECORD_HEADER), data.get(FINGERPRINT_HEADER)
        if not record or not fingerprint:
            return None
        return cls(str(record), str(fingerprint),
                   f"{worker_ctx.container.service_name}.{worker_ctx.entrypoint.method_name}")

    def claim(self, session: Session) -> None:
        """In the entrypoint's first transaction: replay, refuse, or take the key for this attempt."""
        self.attempted = True
        found = session.execute(select(IDEMPOTENCY_RECORDS.c.fingerprint, IDEMPOTENCY_RECORDS.c.answer_json).where(
            IDEMPOTENCY_RECORDS.c.record_key == self.record_key,
            IDEMPOTENCY_RECORDS.c.target == self.target)).first()
        if found is None:
            session.execute(insert(IDEMPOTENCY_RECORDS).values(
                record_key=self.record_key, target=self.target, fingerprint=self.fingerprint, created_at=utcnow()))
            self.claimed = True  # if this transaction rolls back, so does the record, and nothing is stored
            return
        if found.fingerprint != self.fingerprint:
            raise InvalidInput("idempotency_key_reused", "This Idempotency-Key was used for a different request; "
                                                         "use a new key for a new request.")
        if found.answer_json is None:
            raise Conflict("idempotent_request_pending", "A request with this Idempotency-Key took effect but its "
                                                         "answer is not known yet; look the result up instead.")
        raise StoredAnswer(json.loads(found.answer_json))

    def store(self, session: Session, result=None, error: CredenceError | None = None) -> None:
        answer = {"refusal": refusal_to_wire(error)} if error is not None else {"result": result}
        session.execute(update(IDEMPOTENCY_RECORDS).where(
            IDEMPOTENCY_RECORDS.c.record_key == self.record_key, IDEMPOTENCY_RECORDS.c.target == self.target)
            .values(answer_json=json.dumps(answer, ensure_ascii=False, default=str)))


def replay(answer: dict):
    """The stored answer as the entrypoint's outcome: (result, error)."""
    if "refusal" in answer:
        return None, refusal_from_wire(answer["refusal"])
    return answer.get("result"), None
