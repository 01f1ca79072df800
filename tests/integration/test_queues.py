"""Event queues are quorum queues on a real broker; a platform upgraded from classic queues keeps running on
them, and `python -m credence_common.bus.queue_admin migrate` converts them without losing a message, and a
service's RPC queue rpc-<service> with its binding (dropping the calls waiting in it)."""

from __future__ import annotations

import json
import logging

import amqp as pyamqp
import pytest
from kombu import Connection, Exchange, Producer, Queue

from credence_common.bus import queue_admin, queues
from credence_common.bus.outbox_relay import declare_topology, event_exchange
from credence_common.bus.queue_admin import EventQueue, QueueBusy, queue_state, rpc_queue
from credence_common.bus.queues import CLASSIC, QUORUM, declare_event_queue
from credence_common.bus.reliable_events import dead_letter_queue_name, retry_queue_name
from credence_common.contracts.envelope import make_envelope
from credence_common.contracts.events import CertificateIssuedV1
from credence_common.contracts.topology import SUBSCRIPTIONS
from services.verification.service import VerificationService
from tests.integration.conftest import CONFIRMED, publish_event, query, rpc_proxy, wait_for
from tests.integration.test_verification import issued, revoked

ISSUED_QUEUE = next(s for s in SUBSCRIPTIONS if s.event is CertificateIssuedV1)


def event_queue(name: str = "test.events") -> EventQueue:
    return EventQueue(name, "verification", [(event_exchange("certificates"), CertificateIssuedV1.event_type)])


def publish(amqp_uri: str, count: int) -> list[str]:
    ids = []
    with Connection(amqp_uri, transport_options=CONFIRMED) as connection:
        producer = Producer(connection.channel(), exchange=event_exchange("certificates"))
        for _ in range(count):
            envelope = make_envelope(issued())
            producer.publish(envelope.model_dump_json(), routing_key=CertificateIssuedV1.event_type,
                             content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                             headers={"x-credence-attempt": 2}, declare=[event_exchange("certificates")])
            ids.append(envelope.id)
    return ids


def drain(amqp_uri: str, name: str) -> list[tuple[str, dict]]:
    taken = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        while (message := channel.basic_get(name, no_ack=True)) is not None:
            taken.append((json.loads(message.body)["id"], dict(message.headers or {})))
    return taken


def test_a_new_queue_is_a_quorum_queue_and_its_declaration_can_be_repeated(rabbit_config):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:
        queue = event_queue().queue(QUORUM)
        assert declare_event_queue(connection, queue, QUORUM) == QUORUM
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert declare_event_queue(connection, queue, QUORUM) == QUORUM  # again: a no-op, not a refusal
        assert queue_state(connection, event_queue()).queue_type == QUORUM
    publish(amqp, 2)
    with Connection(amqp) as connection:
        assert queue_state(connection, event_queue()).messages == 2  # bound to the publisher's exchange


def test_an_existing_classic_queue_is_kept_and_named_in_the_log(rabbit_config, caplog):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:
        Queue("test.events", exchange=event_exchange("certificates"), routing_key=CertificateIssuedV1.event_type,
              durable=True)(connection.channel()).declare()  # as an earlier release declared it
        queue = event_queue().queue(QUORUM)
        with caplog.at_level(logging.WARNING, logger="credence_common.bus.queues"):
            assert declare_event_queue(connection, queue, QUORUM) == CLASSIC
        assert "credence_common.bus.queue_admin migrate" in caplog.text
        assert queue.queue_arguments["x-queue-type"] == CLASSIC  # what nameko's consumer will declare too


def test_migrate_keeps_every_message_its_headers_and_its_binding(rabbit_config):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:
        Queue("test.events", exchange=event_exchange("certificates"), routing_key=CertificateIssuedV1.event_type,
              durable=True)(connection.channel()).declare()
    waiting = publish(amqp, 5)
    with Connection(amqp) as connection:
        assert queue_admin.migrate_queue(connection, event_queue(), QUORUM) == 5
        state = queue_state(connection, event_queue())
        assert (state.queue_type, state.messages) == (QUORUM, 5)
        assert queue_state(connection, event_queue("test.events.migrating")).queue_type is None  # cleaned up
        assert queue_admin.migrate_queue(connection, event_queue(), QUORUM) == 0  # already done: nothing to do
    later = publish(amqp, 1)  # still bound after the conversion
    taken = drain(amqp, "test.events")
    assert [event_id for event_id, _headers in taken] == waiting + later  # in order, none lost, none doubled
    assert all(headers.get("x-credence-attempt") == 2 for _id, headers in taken)


def test_migrate_refuses_a_queue_with_consumers_or_with_retries_on_their_way(rabbit_config):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:
        channel = connection.channel()
        Queue("test.events", durable=True)(channel).declare()
        channel.basic_consume("test.events", callback=lambda message: None)
        with Connection(amqp) as other:
            with pytest.raises(QueueBusy, match="consumer"):
                queue_admin.migrate_queue(other, event_queue(), QUORUM)
        channel.close()
        pending = queue_admin.QueueState("credence.retry.verification.100ms", "verification", QUORUM, 1, 0)
        with pytest.raises(QueueBusy, match="retr"):
            queue_admin.migrate_queue(connection, event_queue(), QUORUM, [pending])
        assert queue_state(connection, event_queue()).queue_type == CLASSIC  # refused: nothing changed


def test_a_service_declares_quorum_queues_and_retries_through_them(start_service):
    container, config = start_service(VerificationService, EVENT_MAX_ATTEMPTS=3, EVENT_RETRY_BASE_SECONDS=0.05)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    declared = {q.name: q for q in queue_admin.platform_queues(0.05, 3)}
    with Connection(amqp) as connection:
        for name in (ISSUED_QUEUE.queue_name, dead_letter_queue_name("verification"),
                     retry_queue_name("verification", 0.05), retry_queue_name("verification", 0.2)):
            assert queue_state(connection, declared[name]).queue_type == QUORUM, name
        declare_topology(connection, "certificates")  # the publisher's declaration agrees with the consumer's
    publish_event(amqp, revoked())  # fails until its issue arrives: retried through the quorum delay queues
    publish_event(amqp, issued())
    wait_for(lambda: query(db, "select status from verifiable_certificates") == [("revoked",)],
             what="the issue applied, then the retried revocation")


def test_a_service_started_on_classic_queues_keeps_them_and_migrate_converts_them(rabbit_config, start_service):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:  # an earlier release: classic queues, one event waiting
        Queue(ISSUED_QUEUE.queue_name, exchange=event_exchange("certificates"),
              routing_key=CertificateIssuedV1.event_type, durable=True)(connection.channel()).declare()
    container, config = start_service(VerificationService, EVENT_RETRY_BASE_SECONDS=0.05)
    publish_event(amqp, issued())
    wait_for(lambda: query(config["DB_URI"], "select count(*) from verifiable_certificates") == [(1,)],
             what="applied from the classic queue")
    container.stop()  # the operator stops the service's consumers, then converts its queues
    issued_queue = EventQueue(ISSUED_QUEUE.queue_name, "verification",
                              [(event_exchange("certificates"), CertificateIssuedV1.event_type)])
    with Connection(amqp) as connection:
        assert queue_state(connection, issued_queue).queue_type == CLASSIC
        publish(amqp, 1)  # arrives while the service is down
        assert queue_admin.migrate_queue(connection, issued_queue, QUORUM) == 1
    container, config = start_service(VerificationService, EVENT_RETRY_BASE_SECONDS=0.05)  # on a fresh database
    wait_for(lambda: query(config["DB_URI"], "select count(*) from verifiable_certificates") == [(1,)],
             what="the event that waited through the conversion applied")
    with Connection(amqp) as connection:
        assert queue_state(connection, issued_queue).queue_type == QUORUM


def test_the_command_line_shows_and_migrates_a_services_queues(rabbit_config, monkeypatch, capsys):
    amqp = rabbit_config["AMQP_URI"]
    monkeypatch.setenv("AMQP_URI", amqp)
    monkeypatch.setenv("EVENT_RETRY_BASE_SECONDS", "0.05")
    monkeypatch.setenv("EVENT_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("COLUMNS", "200")  # the table in full, as on a wide terminal
    monkeypatch.delenv("RPC_QUEUE_TYPE", raising=False)  # an operator's shell without the services' setting
    monkeypatch.delenv("EVENT_QUEUE_TYPE", raising=False)
    with Connection(amqp) as connection:
        channel = connection.channel()
        Queue(ISSUED_QUEUE.queue_name, exchange=event_exchange("certificates"),
              routing_key=CertificateIssuedV1.event_type, durable=True)(channel).declare()
        Queue(dead_letter_queue_name("verification"), durable=True)(channel).declare()
        declare_classic_rpc_queue(connection, "verification")
    publish(amqp, 3)
    call(amqp, "verification.health")
    assert queue_admin.main(["status", "verification"]) == 0
    shown = capsys.readouterr().out
    assert ISSUED_QUEUE.queue_name[:30] in shown and "classic" in shown and "not declared" in shown
    assert "rpc-verification" in shown and "rpc-identity" not in shown
    assert queue_admin.main(["migrate", "verification"]) == 0
    out = capsys.readouterr().out
    assert "3 moved" in out
    assert "rpc-verification: classic, left as it is" in out  # neither --rpc-to nor RPC_QUEUE_TYPE: untouched
    with Connection(amqp) as connection:
        for name in (ISSUED_QUEUE.queue_name, dead_letter_queue_name("verification")):
            assert queue_state(connection, EventQueue(name, "verification")).queue_type == QUORUM
        assert queue_state(connection, EventQueue(ISSUED_QUEUE.queue_name, "verification")).messages == 3
        assert queue_state(connection, rpc_queue("verification")).queue_type == CLASSIC
    assert queue_admin.main(["migrate", "verification", "--rpc-to", "quorum"]) == 0
    assert "rpc-verification: quorum (1 waiting call(s) dropped)" in capsys.readouterr().out
    with Connection(amqp) as connection:
        assert queue_state(connection, rpc_queue("verification")).queue_type == QUORUM
    monkeypatch.setenv("RPC_QUEUE_TYPE", "classic")  # the services' setting, when the shell has it
    assert queue_admin.main(["migrate", "verification"]) == 0
    assert "rpc-verification: classic" in capsys.readouterr().out
    with Connection(amqp) as connection:
        assert queue_state(connection, rpc_queue("verification")).queue_type == CLASSIC
    monkeypatch.setenv("EVENT_QUEUE_TYPE", "classic")  # without --to, the event queues follow the services' setting
    assert queue_admin.main(["migrate", "verification"]) == 0
    assert f"{ISSUED_QUEUE.queue_name}: classic (3 moved)" in capsys.readouterr().out
    with Connection(amqp) as connection:
        assert queue_state(connection, EventQueue(ISSUED_QUEUE.queue_name, "verification")).queue_type == CLASSIC
    assert queue_admin.main(["migrate", "nobody"]) == 2


def test_an_unknown_queue_type_setting_is_refused():
    with pytest.raises(ValueError, match="quorum"):
        queues.preferred_queue_type({"EVENT_QUEUE_TYPE": "mirrored"})
    assert queues.preferred_queue_type({}) == QUORUM
    assert queues.queue_arguments(QUORUM, {"x-message-ttl": 5, "x-dead-letter-exchange": ""}) == {
        "x-message-ttl": 5, "x-dead-letter-exchange": "", "x-queue-type": "quorum",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def rpc_queue_type(amqp: str, service: str) -> str | None:
    with Connection(amqp) as connection:
        return queue_state(connection, rpc_queue(service)).queue_type


RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)


def declare_classic_rpc_queue(connection: Connection, service: str) -> None:
    """rpc-<service> as nameko declared it before (nameko.rpc.RpcConsumer): durable, classic, bound with <service>.*"""
    Queue(f"rpc-{service}", exchange=RPC_EXCHANGE, routing_key=f"{service}.*", durable=True)(
        connection.channel()).declare()


def call(amqp: str, routing_key: str) -> None:
    """A call as a caller publishes it: mandatory and confirmed, so one that finds no queue raises here (py-amqp
    raises a returned message when the channel has no handler for it)."""
    with Connection(amqp) as connection:
        connection.channel().basic_publish_confirm(
            pyamqp.Message(b'{"args": [], "kwargs": {}}', delivery_mode=2, reply_to="test-reply", correlation_id="1"),
            exchange=RPC_EXCHANGE.name, routing_key=routing_key, mandatory=True)


def test_a_services_rpc_queue_is_a_quorum_queue_on_a_cluster_and_answers(start_service):
    # credence_common/bus/rpc_queue.py: in a cluster a classic rpc-<service> would live and die with one node
    container, config = start_service(VerificationService, RPC_QUEUE_TYPE="quorum")
    assert rpc_queue_type(config["AMQP_URI"], "verification") == QUORUM
    with rpc_proxy("verification", config) as verification:
        assert verification.health()["status"] == "ok"


def test_a_services_rpc_queue_is_classic_by_default_and_answers(start_service):
    container, config = start_service(VerificationService)
    assert rpc_queue_type(config["AMQP_URI"], "verification") == CLASSIC
    with rpc_proxy("verification", config) as verification:
        assert verification.health()["status"] == "ok"


def test_a_classic_rpc_queue_of_an_earlier_release_is_kept_and_named_in_the_log(rabbit_config, start_service,
                                                                                 caplog):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:  # as nameko declared it before
        Queue("rpc-verification", exchange=Exchange("nameko-rpc", type="topic", durable=True),
              routing_key="verification.*", durable=True)(connection.channel()).declare()
    with caplog.at_level(logging.WARNING, logger="credence_common.bus.queues"):
        container, config = start_service(VerificationService, RPC_QUEUE_TYPE="quorum")
    assert "queue_admin migrate verification --rpc-to quorum" in caplog.text  # the command, no longer rabbitmqctl
    assert rpc_queue_type(amqp, "verification") == CLASSIC
    with rpc_proxy("verification", config) as verification:  # it starts and answers on the queue it has
        assert verification.health()["status"] == "ok"


def test_migrate_makes_a_classic_rpc_queue_quorum_keeping_its_binding_and_dropping_the_waiting_calls(rabbit_config):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:
        declare_classic_rpc_queue(connection, "verification")
    call(amqp, "verification.health")  # calls waiting while the service is stopped: their callers give up
    call(amqp, "verification.check")
    with Connection(amqp) as connection:
        assert queue_state(connection, rpc_queue("verification")).messages == 2
        assert queue_admin.migrate_rpc_queue(connection, rpc_queue("verification"), QUORUM) == 2
        state = queue_state(connection, rpc_queue("verification"))
        assert (state.queue_type, state.messages) == (QUORUM, 0)
        assert queue_admin.migrate_rpc_queue(connection, rpc_queue("verification"), QUORUM) == 0  # already done
    with pytest.raises(pyamqp.exceptions.AMQPError):  # call() notices a call that found no queue
        call(amqp, "identity.health")
    call(amqp, "verification.x")  # still bound: a call routed to verification.x lands in it
    with Connection(amqp) as connection:
        message = connection.channel().basic_get("rpc-verification", no_ack=True)
        assert message is not None and message.delivery_info["routing_key"] == "verification.x"
        # and back (a quorum queue is deleted without if-unused, which it refuses)
        call(amqp, "verification.y")
        assert queue_admin.migrate_rpc_queue(connection, rpc_queue("verification"), CLASSIC) == 1
        assert queue_state(connection, rpc_queue("verification")).queue_type == CLASSIC
    call(amqp, "verification.z")
    with Connection(amqp) as connection:
        assert queue_state(connection, rpc_queue("verification")).messages == 1


def test_migrate_refuses_an_rpc_queue_with_a_consumer(rabbit_config):
    amqp = rabbit_config["AMQP_URI"]
    with Connection(amqp) as connection:
        declare_classic_rpc_queue(connection, "verification")
        channel = connection.channel()
        channel.basic_consume("rpc-verification", callback=lambda message: None)
        with Connection(amqp) as other:
            with pytest.raises(QueueBusy, match="consumer"):
                queue_admin.migrate_rpc_queue(other, rpc_queue("verification"), QUORUM)
            assert queue_state(other, rpc_queue("verification")).queue_type == CLASSIC  # refused: nothing changed
    call(amqp, "verification.health")  # still bound


def test_a_services_classic_rpc_queue_is_converted_while_it_is_stopped_and_it_answers_on_quorum(
        rabbit_config, start_service, monkeypatch, caplog):
    amqp = rabbit_config["AMQP_URI"]
    monkeypatch.setenv("AMQP_URI", amqp)
    with Connection(amqp) as connection:  # as nameko declared it before
        declare_classic_rpc_queue(connection, "verification")
    container, config = start_service(VerificationService, RPC_QUEUE_TYPE="quorum")
    with Connection(amqp) as connection:  # the running service's consumer: refused
        with pytest.raises(QueueBusy, match="stop every instance of verification"):
            queue_admin.migrate_rpc_queue(connection, rpc_queue("verification"), QUORUM)
    container.stop()
    assert queue_admin.main(["migrate", "verification", "--rpc-to", "quorum"]) == 0
    assert rpc_queue_type(amqp, "verification") == QUORUM
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="credence_common.bus.queues"):
        container, config = start_service(VerificationService, RPC_QUEUE_TYPE="quorum")
    assert "rpc-verification" not in caplog.text  # declared as it wants it: no warning
    with rpc_proxy("verification", config) as verification:  # nameko's consumer agrees with the queue
        assert verification.health()["status"] == "ok"
