"""Issuing certificates in bulk, events and all: the seeding, the baseline and the measurement for ``bench.suite``.

``count`` certificates wait for payment in certificates' database (a raw COPY: what is measured is the issuing).
With the certificates service stopped, ``count`` ``payment_succeeded`` events are published to its queue by
raw pika with publisher confirms, one confirm per message: that publishing is the baseline, the broker's own
rate for the same number of durable, confirmed messages. Then the service starts and the clock runs until a
downstream subscriber (its own queue on the certificate events) has received a ``certificate.issued`` for every
one: each is a transaction (lock, number, history, batch, outbox), a relay publish with confirms, and a delivery.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pika

from credence_common.bus.outbox_relay import event_exchange
from credence_common.contracts.envelope import make_envelope
from credence_common.contracts.events import CertificateIssuedV1, PaymentSucceededV1


@dataclass(frozen=True)
class IssuanceResult:
    count: int
    publish_seconds: float  # the baseline: raw pika, one confirm per message
    issue_seconds: float  # service start to the last certificate.issued received
    issued_in_database: int
    events_received: int
    # CPU milliseconds per certificate while issuing, by process (the certificates service from its start;
    # the others, the broker and PostgreSQL over the same span): where the time goes, in every run
    cpu_ms_per_certificate: dict[str, float] = field(default_factory=dict)

    @property
    def publish_rate(self) -> float:
        return self.count / self.publish_seconds

    @property
    def issue_rate(self) -> float:
        return self.count / self.issue_seconds


def certificate_id(n: int) -> str:
    return f"00000000-0000-4000-a000-{n:012d}"


def seed_awaiting_payment(db_uri: str, count: int, workdir: Path, environ: dict | None = None) -> None:
    from bench.result_import import copy_lines
    from services.certificates.adapters.protection import keyring_from_environment

    now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
    # the names are stored encrypted, with the keys the platform runs with (its environment, not the bench's)
    keyring = keyring_from_environment(environ)
    lines = (f"{certificate_id(n)},{uuid.uuid4()},{uuid.uuid4()},8827{n:08d},{keyring.encrypt(f'Holder {n}')},"
             f"110101********{n % 10000:04d},ZK-LAW,Law (self-study),2026-10,awaiting_candidate_payment,"
             f"candidate,{uuid.uuid4()},6000,{now},1,none\n" for n in range(count))
    copy_lines(db_uri, "COPY certificates (certificate_id, result_id, candidate_id, ticket_number, "
                       "holder_name_encrypted, "
                       "resident_id_number_masked, program_code, program_name, sitting, status, payer_kind, "
                       "payer_id, certificate_fee_fen, created_at, version, delivery_status) "
                       "FROM STDIN WITH (FORMAT csv)", lines, workdir / "awaiting-payment.csv")


def payment_bodies(count: int):
    paid_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    for n in range(count):
        payload = PaymentSucceededV1(order_number=f"B{n:019d}", due_id=str(uuid.uuid4()), purpose="certificate_fee",
                                     reference_id=certificate_id(n), candidate_id=str(uuid.uuid4()),
                                     payer_kind="candidate", payer_id=str(uuid.uuid4()), amount_fen=6000,
                                     order_amount_fen=6000, provider="bench", provider_transaction_id=f"T{n}",
                                     paid_at=paid_at)
        yield make_envelope(payload).model_dump_json().encode()


def publish_confirmed(amqp_uri: str, count: int) -> float:
    """The baseline: ``count`` persistent messages to the payments exchange, each confirmed before the next."""
    bodies = list(payment_bodies(count))  # built before the clock starts: only the publishing is timed
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri.replace("pyamqp://", "amqp://", 1)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                          delivery_mode=2)
        started = time.perf_counter()
        for body in bodies:
            channel.basic_publish(event_exchange("payments").name, PaymentSucceededV1.event_type, body, properties)
        return time.perf_counter() - started
    finally:
        connection.close()


class IssuedCounter(threading.Thread):
    """A downstream subscriber: its own queue on certificate.issued, counting distinct certificates."""

    def __init__(self, amqp_uri: str):
        super().__init__(daemon=True)
        self.parameters = pika.URLParameters(amqp_uri.replace("pyamqp://", "amqp://", 1))
        self.queue = f"bench.issued-subscriber.{uuid.uuid4().hex[:8]}"
        self.certificates: set[str] = set()
        self.stopping = False
        connection = pika.BlockingConnection(self.parameters)
        channel = connection.channel()
        channel.exchange_declare(event_exchange("certificates").name, exchange_type="topic", durable=True)
        channel.queue_declare(self.queue, durable=True)
        channel.queue_bind(self.queue, event_exchange("certificates").name, routing_key=CertificateIssuedV1.event_type)
        connection.close()

    def run(self) -> None:
        connection = pika.BlockingConnection(self.parameters)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        for method, _properties, body in channel.consume(self.queue, auto_ack=True, inactivity_timeout=0.5):
            if self.stopping:
                break
            if method is not None:
                self.certificates.add(json.loads(body)["data"]["certificate_id"])
        channel.queue_delete(self.queue)
        connection.close()


def measure(platform, amqp_uri: str, count: int, workdir: Path, timeout: float = 1800) -> IssuanceResult:
    """``platform.env`` is the environment its processes run with."""
    from sqlalchemy import text

    from bench.hops import cpu_holders, cpu_seconds
    from credence_common.persistence.db import make_engine
    from deploy.processes import BY_NAME

    db_uri = platform.db_uri("certificates")
    platform.kill("certificates")
    seed_awaiting_payment(db_uri, count, workdir, platform.env)
    counter = IssuedCounter(amqp_uri)
    counter.start()
    publish_seconds = publish_confirmed(amqp_uri, count)
    holders = cpu_holders(platform)  # without the certificates service, which starts from nothing
    cpu_before = {name: cpu_seconds(pids) for name, pids in holders.items()}
    started = time.perf_counter()
    platform.start_one(BY_NAME["certificates"])
    holders["certificates"] = [platform.processes["certificates"].pid]
    cpu_before["certificates"] = 0.0
    while len(counter.certificates) < count and time.perf_counter() - started < timeout:
        time.sleep(0.2)
    issue_seconds = time.perf_counter() - started
    cpu = {name: round(1000 * (cpu_seconds(pids) - cpu_before[name]) / count, 2) for name, pids in holders.items()}
    counter.stopping = True
    counter.join(timeout=10)
    platform.wait_until_ready(BY_NAME["certificates"])
    engine = make_engine(db_uri)
    try:
        with engine.connect() as connection:
            issued = connection.execute(text("SELECT count(*) FROM certificates WHERE status = 'issued' AND "
                                             "certificate_id LIKE '00000000-0000-4000-a000-%'")).scalar()
    finally:
        engine.dispose()
    return IssuanceResult(count, publish_seconds, issue_seconds, issued, len(counter.certificates),
                          dict(sorted(cpu.items(), key=lambda item: -item[1])))
