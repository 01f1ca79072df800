"""Certificates' PaymentBatch: what a batch of payments shares in its transaction, passed to each payment's use case
explicitly (issue #21 item 6) instead of kept under keys in the session. The batch as a whole, on a real broker
and both databases: tests/integration/test_certificates.py and tests/integration/test_event_batches.py."""

from __future__ import annotations

import contextlib
from collections import deque
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from credence_common.bus.consumers import consume_batch
from credence_common.contracts.certificate_numbers import format_certificate_number
from credence_common.contracts.envelope import EventPayload, make_envelope
from services.certificates import domain, usecases
from services.certificates.models import CertificateHistory, NumberSequence, ProcessedEvent, ProductionBatch

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 2026 in Beijing too


class Certificate:
    """What ``_new_number`` and ``join_open_batch`` read and write of a certificate (the real one seals its
    personal data, which needs the service's keys)."""

    def __init__(self, certificate_id: str, ticket_number: str = "11202612070001"):
        self.certificate_id, self.ticket_number = certificate_id, ticket_number
        self.status, self.delivery_status, self.version = domain.ISSUED, domain.DELIVERY_NONE, 1
        self.batch_id = self.ship_by = None


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    tables = [NumberSequence.__table__, ProductionBatch.__table__, CertificateHistory.__table__]
    NumberSequence.metadata.create_all(engine, tables=tables)
    with Session(engine) as session, session.begin():
        yield session


def statements(session: Session) -> list[str]:
    seen: list[str] = []
    event.listen(session.get_bind(), "before_cursor_execute",
                 lambda _conn, _cursor, sql, *_args: seen.append(sql))
    return seen


def test_reserved_serials_go_out_in_order_until_none_is_left():
    batch = usecases.PaymentBatch(serials={"certificate:2026:11": deque([7, 8])})
    assert [batch.reserved_serial("certificate:2026:11") for _ in range(3)] == [7, 8, None]
    assert batch.reserved_serial("certificate:2026:12") is None  # no serial reserved on that counter


def test_a_number_comes_from_the_batch_reserve_then_from_the_counter(session):
    sequence = domain.serial_sequence_name(2026, "11")
    batch = usecases.PaymentBatch(serials={sequence: deque([41])})
    certificate = Certificate("c1")
    assert usecases._new_number(session, certificate, NOW, batch) == format_certificate_number(2026, "11", 41)
    # the reserve is used up: the counter (which the reserve did not touch, here)
    assert usecases._new_number(session, certificate, NOW, batch) == format_certificate_number(2026, "11", 1)
    assert usecases._new_number(session, certificate, NOW) == format_certificate_number(2026, "11", 2)


def test_the_production_batch_is_looked_up_once_per_payment_batch(session):
    rules, batch = usecases.CertificateRules(), usecases.PaymentBatch()
    first, second = Certificate("c1"), Certificate("c2")
    usecases.join_open_batch(session, first, NOW, rules, batch)  # opens the first production batch
    assert batch.production_batch is not None and first.batch_id == batch.production_batch.batch_id
    seen = statements(session)
    usecases.join_open_batch(session, second, NOW, rules, batch)
    assert second.batch_id == first.batch_id
    assert not [sql for sql in seen if "production_batches" in sql]  # kept in the batch, not queried again
    assert first.delivery_status == second.delivery_status == domain.DELIVERY_QUEUED


def test_without_a_payment_batch_the_open_production_batch_is_found_each_time(session):
    rules = usecases.CertificateRules()
    first, second = Certificate("c1"), Certificate("c2")
    usecases.join_open_batch(session, first, NOW, rules)
    seen = statements(session)
    usecases.join_open_batch(session, second, NOW, rules)
    assert second.batch_id == first.batch_id
    assert [sql for sql in seen if "production_batches" in sql]


class Pinged(EventPayload):
    event_type: ClassVar[str] = "credence.test.pinged.v1"
    publisher: ClassVar[str] = "test"
    description: ClassVar[str] = "A test event."

    n: int


class Service:
    """What ``consume_batch`` uses of a service: its name and its unit of work (here, one open transaction)."""

    name = "certificates"

    def __init__(self, session: Session):
        self.db, self._session = self, session

    @contextlib.contextmanager
    def transaction(self):
        yield self._session


def test_consume_batch_hands_what_prepare_made_to_every_effect_of_the_batch(session):
    ProcessedEvent.metadata.create_all(session.get_bind(), tables=[ProcessedEvent.__table__])
    made: list = []
    applied: list = []

    def prepare(_session, payloads):
        made.append((object(), [payload.n for payload in payloads]))
        return made[-1][0]

    def effect(_session, data, batch):
        applied.append((data.n, batch))

    messages = [make_envelope(Pinged(n=n)).model_dump(mode="json") for n in (1, 2, 3)]
    assert consume_batch(Service(session), messages + messages[:1], Pinged, ProcessedEvent, effect,
                         prepare=prepare) == 3
    assert len(made) == 1 and made[0][1] == [1, 2, 3]  # prepared once, with the payloads to apply
    assert applied == [(1, made[0][0]), (2, made[0][0]), (3, made[0][0])]
    assert consume_batch(Service(session), messages, Pinged, ProcessedEvent, effect, prepare=prepare) == 0
    assert len(made) == 1  # nothing fresh: nothing prepared
