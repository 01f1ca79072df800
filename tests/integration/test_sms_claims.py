"""Several identity replicas share one SMS queue: each due text is claimed by exactly one of them
(services/identity/adapters/sms.py, ``claim_due_texts``), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from services.identity.adapters.sms import CLAIM_LEASE, claim_due_texts
from services.identity.models import SmsQueue


def queue_texts(engine, count: int, now) -> None:
    with Session(engine) as session, session.begin():
        for n in range(count):
            session.add(SmsQueue(mobile_encrypted=f"m{n}", text_encrypted=f"t{n}", created_at=now,
                                 next_attempt_at=now, attempts=0, state="pending"))


def test_two_replicas_polling_at_once_never_claim_the_same_text(databases):
    engine = make_engine(databases.create("identity"))
    now = utcnow()
    queue_texts(engine, 60, now)
    claims: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def replica(name: str) -> None:
        start.wait()
        while batch := claim_due_texts(engine, now, limit=7):
            claims[name].extend(batch)

    threads = [threading.Thread(target=replica, args=(name,)) for name in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    assert not set(claims["a"]) & set(claims["b"]), "a text was claimed by both replicas"
    assert len(claims["a"]) + len(claims["b"]) == 60


def test_a_claim_is_a_lease_that_runs_out(databases):
    engine = make_engine(databases.create("identity"))
    now = utcnow()
    queue_texts(engine, 3, now)
    first = claim_due_texts(engine, now)
    assert len(first) == 3
    assert claim_due_texts(engine, now + timedelta(seconds=1)) == []  # leased: another replica skips them
    # the claiming replica died before sending: after the lease another one takes them over
    assert claim_due_texts(engine, now + CLAIM_LEASE + timedelta(seconds=1)) == first
    with Session(engine) as session, session.begin():
        session.get(SmsQueue, first[0]).state = "sent"
    assert claim_due_texts(engine, now + 3 * CLAIM_LEASE) == first[1:]  # a sent text is never claimed again
    engine.dispose()
