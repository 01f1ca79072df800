"""The platform's queues as a whole: which queues the services declare (their event queues and their RPC request
queue ``rpc-<service>``), their state (type, messages, consumers), and their conversion between classic and quorum
queues, with its command line:

    python -m credence_common.bus.queue_admin status              # every queue: type, messages, consumers
    python -m credence_common.bus.queue_admin migrate SERVICE     # its classic event queues become quorum queues
    python -m credence_common.bus.queue_admin migrate SERVICE --rpc-to quorum   # and rpc-SERVICE too

(also ``credence queues status|migrate``). ``migrate`` moves an event queue's messages through a temporary quorum
queue and keeps the bindings, so no event is lost; an event published during the move may be delivered twice
(consumers deduplicate by event id). It converts ``rpc-<service>`` to the type ``--rpc-to`` names (without it,
the one ``RPC_QUEUE_TYPE`` names if set, as for the services; unset, the queue is left as it is: a shell without
the services' setting must not make a cluster's quorum queue classic again) keeping its binding but not the calls
waiting in it (``migrate_rpc_queue`` says why). It refuses a queue that has consumers: stop the service first
(every instance: scale it to 0), then start it again.

Declaring one queue is credence_common/bus/queues.py's job; this module sits above the outbox relay and the event
handlers, which both build on that one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import amqp.exceptions
from kombu import Connection, Exchange, Queue

from credence_common.bus.queues import (
    CLASSIC,
    QUEUE_TYPE_CONFIG,
    QUORUM,
    close_quietly,
    preferred_queue_type,
    queue_arguments,
)

log = logging.getLogger(__name__)


@dataclass
class EventQueue:
    name: str
    service: str  # the service that consumes from it
    bindings: list[tuple[Exchange, str]] = field(default_factory=list)
    arguments: dict = field(default_factory=dict)

    def queue(self, queue_type: str) -> Queue:
        from kombu import binding

        return Queue(self.name, durable=True, bindings=[binding(exchange, routing_key=key)
                                                       for exchange, key in self.bindings] or None,
                     queue_arguments=queue_arguments(queue_type, self.arguments))


def platform_queues(retry_base_seconds: float, max_attempts: int) -> list[EventQueue]:
    """Every event queue the services declare with these retry settings."""
    from credence_common.bus.outbox_relay import event_exchange
    from credence_common.bus.reliable_events import (
        dead_letter_queue_name,
        retry_delays,
        retry_queue_arguments,
        retry_queue_name,
    )
    from credence_common.contracts.topology import SUBSCRIPTIONS

    queues = [EventQueue(s.queue_name, s.consumer, [(event_exchange(s.publisher), s.event.event_type)])
              for s in SUBSCRIPTIONS]
    for service in sorted({s.consumer for s in SUBSCRIPTIONS}):
        queues.append(EventQueue(dead_letter_queue_name(service), service))
        for delay in retry_delays(retry_base_seconds, max_attempts):
            name = retry_queue_name(service, delay)
            queues.append(EventQueue(name, service, [(Exchange(name, type="fanout", durable=True), "")],
                                     retry_queue_arguments(delay)))
    return queues


# The services that answer RPC, each on its queue rpc-<service> (deploy/processes.py SERVICE_NAMES, which this
# package may not import; tests/unit/test_queue_admin.py checks it against the services' @rpc entrypoints).
RPC_SERVICES = ("identity", "scoring", "certificates", "payments", "verification")


class RpcQueue(EventQueue):
    """A service's RPC request queue: what it holds are calls, not events (``migrate_rpc_queue``)."""


def rpc_queue(service: str) -> RpcQueue:
    """``rpc-<service>`` as nameko's ``RpcConsumer`` declares it (durable, bound to the ``nameko-rpc`` topic exchange
    with ``<service>.*``) with credence_common/bus/rpc_queue.py ``ReplicatedRpcConsumer``'s arguments: none but its
    type."""
    from nameko.rpc import RPC_QUEUE_TEMPLATE, get_rpc_exchange

    return RpcQueue(RPC_QUEUE_TEMPLATE.format(service), service, [(get_rpc_exchange({}), f"{service}.*")])


def all_queues(retry_base_seconds: float, max_attempts: int) -> list[EventQueue]:
    """Every queue the services declare: their event queues, then their RPC request queues."""
    return platform_queues(retry_base_seconds, max_attempts) + [rpc_queue(service) for service in RPC_SERVICES]


@dataclass(frozen=True)
class QueueState:
    name: str
    service: str
    queue_type: str | None  # None: not declared yet
    messages: int
    consumers: int


def queue_state(connection: Connection, event_queue: EventQueue) -> QueueState:
    channel = connection.channel()
    try:
        _name, messages, consumers = channel.queue_declare(event_queue.name, passive=True)
    except amqp.exceptions.NotFound:
        close_quietly(channel)
        return QueueState(event_queue.name, event_queue.service, None, 0, 0)
    close_quietly(channel)
    # an existing queue re-declared with its own arguments is a no-op; with the other type it is refused
    for queue_type in (QUORUM, CLASSIC):
        channel = connection.channel()
        try:
            channel.queue_declare(event_queue.name, durable=True, auto_delete=False,
                                  arguments=queue_arguments(queue_type, event_queue.arguments))
            return QueueState(event_queue.name, event_queue.service, queue_type, messages, consumers)
        except amqp.exceptions.PreconditionFailed:
            continue
        finally:
            close_quietly(channel)
    return QueueState(event_queue.name, event_queue.service, "other arguments", messages, consumers)


class QueueBusy(Exception):
    """A queue has consumers: converting it would pull it from under them."""


def _move(channel, source: str, target: str) -> int:
    """Every message of ``source`` into ``target``, each confirmed by the broker before it is removed."""
    moved = 0
    while True:
        message = channel.basic_get(source, no_ack=False)
        if message is None:
            return moved
        properties = {key: value for key, value in message.properties.items() if key != "application_headers"}
        headers = {key: value for key, value in (message.headers or {}).items() if key != "x-death"}
        outgoing = amqp.Message(message.body, application_headers=headers, **properties)
        channel.basic_publish_confirm(outgoing, exchange="", routing_key=target)
        channel.basic_ack(message.delivery_tag)
        moved += 1


def _delete_drained(channel, name: str, queue_type: str) -> None:
    # unbound and drained, so nothing can arrive any more; a classic queue double-checks it (a quorum queue
    # refuses if-unused and if-empty)
    if queue_type == CLASSIC:
        channel.queue_delete(name, if_unused=True, if_empty=True)
    else:
        channel.queue_delete(name)


def migrate_queue(connection: Connection, event_queue: EventQueue, to_type: str = QUORUM,
                  retries_waiting: list[QueueState] | None = None) -> int:
    """Convert one queue to ``to_type`` keeping its messages and bindings. Returns the messages moved.

    Nothing else may write to the queue by name meanwhile: its service is stopped (checked: no consumers),
    and for a handler queue, ``retries_waiting`` (the states of its service's retry queues) are empty."""
    state = queue_state(connection, event_queue)
    if state.queue_type in (None, to_type):
        return 0
    if state.consumers:
        raise QueueBusy(f"{event_queue.name} has {state.consumers} consumer(s): stop {event_queue.service} first")
    for waiting in retries_waiting or ():
        # an expiring retry is dead-lettered to its handler queue by name: with the queue away it would vanish
        if waiting.messages:
            raise QueueBusy(f"{waiting.name} holds {waiting.messages} retr(y/ies) bound for {event_queue.name}: "
                            "wait until it is empty (at most its delay) and run migrate again")
    holding = EventQueue(f"{event_queue.name}.migrating", event_queue.service, event_queue.bindings,
                         event_queue.arguments)
    channel = connection.channel()
    try:
        # new events reach the holding queue from now on: none is lost while the queue is away
        holding.queue(to_type)(channel).declare()
        for exchange, routing_key in event_queue.bindings:
            channel.queue_unbind(event_queue.name, exchange.name, routing_key)
        moved = _move(channel, event_queue.name, holding.name)
        _delete_drained(channel, event_queue.name, state.queue_type)
    finally:
        close_quietly(channel)
    # a fresh channel: RabbitMQ 3.10 crashes a channel that publishes to a queue it knew as the other type
    channel = connection.channel()
    try:
        event_queue.queue(to_type)(channel).declare()
        for exchange, routing_key in holding.bindings:
            channel.queue_unbind(holding.name, exchange.name, routing_key)
        _move(channel, holding.name, event_queue.name)
        _delete_drained(channel, holding.name, to_type)
    finally:
        close_quietly(channel)
    log.info("queue %s is now a %s queue (%d message(s) moved)", event_queue.name, to_type, moved)
    return moved


def migrate_rpc_queue(connection: Connection, rpc: EventQueue, to_type: str = QUORUM) -> int:
    """Convert a service's RPC request queue to ``to_type`` keeping its binding; the calls waiting in it are
    dropped. Returns the calls dropped. Refused while the queue has consumers: the service is stopped."""
    # Dropped, not moved as migrate_queue moves events. With the service stopped, what waits in rpc-<service> are
    # calls whose callers have given up or will before it is back: each waits at most its deadline (the gateway's
    # RPC_TIMEOUT_SECONDS, 10 s; a service's call_with_deadline) and the gateway then answers 503 service_timeout,
    # the client retrying under its Idempotency-Key. Moved, a call would not wait harmlessly: the gateway's calls
    # expire at their deadline (gateway/amqp_rpc.py) but a service's calls to another carry no expiration, so the
    # service would carry each out when it starts again, with nobody reading the answer. Dropping them is what the
    # procedure this replaces did (`rabbitmqctl delete_queue`), and needs no holding queue: between the deletion
    # and the new declaration (milliseconds) a call finds no route, and its caller, publishing with `mandatory`,
    # is answered 503 at once.
    state = queue_state(connection, rpc)
    if state.queue_type in (None, to_type):
        return 0
    if state.consumers:
        raise QueueBusy(f"{rpc.name} has {state.consumers} consumer(s): stop every instance of {rpc.service} first")
    channel = connection.channel()
    try:
        # deleted only if still unused, except a quorum queue, which refuses if-unused (as in _delete_drained)
        dropped = channel.queue_delete(rpc.name, if_unused=state.queue_type != QUORUM)
    except amqp.exceptions.PreconditionFailed:
        raise QueueBusy(f"{rpc.name} has a consumer now: stop every instance of {rpc.service} first") from None
    finally:
        close_quietly(channel)
    # a fresh channel, as in migrate_queue
    channel = connection.channel()
    try:
        rpc.queue(to_type)(channel).declare()
    except amqp.exceptions.PreconditionFailed:  # an instance started meanwhile and declared it as it wants
        raise QueueBusy(f"{rpc.name} was declared again by a starting {rpc.service} meanwhile: stop every instance "
                        "of it and run migrate again") from None
    finally:
        close_quietly(channel)
    log.info("queue %s is now a %s queue (%d call(s) dropped)", rpc.name, to_type, dropped)
    return dropped


# --- the command line -------------------------------------------------------------------------------------


def _settings() -> tuple[str, float, int]:
    return (os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"),
            float(os.environ.get("EVENT_RETRY_BASE_SECONDS", 1.0)), int(os.environ.get("EVENT_MAX_ATTEMPTS", 6)))


def _selected(queues: Iterable[EventQueue], service: str | None) -> list[EventQueue]:
    return [q for q in queues if service in (None, q.service)]


def build_app():
    """The queues' typer app (also mounted as ``credence queues``)."""
    import typer
    from rich.console import Console
    from rich.table import Table

    app = typer.Typer(add_completion=False, help="The platform's queues (event queues and RPC request queues): "
                                                 "their type, and conversion to quorum queues. The broker is "
                                                 "AMQP_URI; retry queues follow EVENT_RETRY_BASE_SECONDS and "
                                                 "EVENT_MAX_ATTEMPTS.")
    console = Console()

    @app.command()
    def status(service: str = typer.Argument(None, help="only this service's queues")) -> None:
        """Every queue: type, messages waiting, consumers."""
        amqp_uri, base, attempts = _settings()
        table = Table("queue", "service", "type", "messages", "consumers")
        with Connection(amqp_uri) as connection:
            for event_queue in _selected(all_queues(base, attempts), service):
                state = queue_state(connection, event_queue)
                table.add_row(state.name, state.service, state.queue_type or "[dim]not declared[/dim]",
                              str(state.messages), str(state.consumers))
        console.print(table)

    @app.command()
    def migrate(service: str = typer.Argument(..., help="the service whose queues to convert ('all' for every one)"),
                to: str = typer.Option(None, help="the event queues' type: quorum or classic (without it, "
                                                  "EVENT_QUEUE_TYPE's if set, else quorum)"),
                rpc_to: str = typer.Option(None, "--rpc-to",
                                           help="the RPC queue's type: quorum or classic (without it, RPC_QUEUE_TYPE's "
                                                "if set, else the queue is left as it is)")) -> None:
        """Convert a service's event queues to --to's type (quorum by default), and its RPC queue to --rpc-to's
        (stop every instance of it first). The calls waiting in its RPC queue are dropped: their callers have given
        up."""
        from credence_common.bus.rpc_queue import RPC_QUEUE_TYPE_CONFIG, rpc_queue_type

        amqp_uri, base, attempts = _settings()
        # the services' own setting when --to is not given: the command a service's warning names then converts
        # its event queues to what the services declare, never away from it
        to_type = preferred_queue_type({QUEUE_TYPE_CONFIG: to or os.environ.get(QUEUE_TYPE_CONFIG) or QUORUM})
        # the services' own setting, not --to: a quorum rpc-<service> costs every call on a single node (classic
        # by default), and only a cluster needs one. Neither given: left as it is.
        rpc_setting = rpc_to or os.environ.get(RPC_QUEUE_TYPE_CONFIG)
        rpc_type = rpc_queue_type({RPC_QUEUE_TYPE_CONFIG: rpc_setting}) if rpc_setting else None
        queues = _selected(all_queues(base, attempts), None if service == "all" else service)
        if not queues:
            console.print(f"[red]no queues for {service!r}[/red]")
            raise typer.Exit(2)
        everything = platform_queues(base, attempts)
        with Connection(amqp_uri) as connection:
            for event_queue in queues:
                retry_queues = [q for q in everything if q.service == event_queue.service and ".retry." in q.name]
                try:
                    if isinstance(event_queue, RpcQueue):
                        if rpc_type is None:
                            kept = queue_state(connection, event_queue).queue_type or "not declared"
                            console.print(f"{event_queue.name}: {kept}, left as it is (--rpc-to converts it)")
                            continue
                        dropped = migrate_rpc_queue(connection, event_queue, rpc_type)
                        console.print(f"{event_queue.name}: {rpc_type}"
                                      + (f" ({dropped} waiting call(s) dropped)" if dropped else ""))
                        continue
                    waiting = ([queue_state(connection, q) for q in retry_queues]
                               if event_queue.name.startswith("evt-") else [])
                    moved = migrate_queue(connection, event_queue, to_type, waiting)
                except QueueBusy as exc:
                    console.print(f"[red]{exc}[/red]")
                    raise typer.Exit(1) from None
                console.print(f"{event_queue.name}: {to_type}" + (f" ({moved} moved)" if moved else ""))

    return app


def main(argv: list[str] | None = None) -> int:
    import typer

    app = build_app()
    try:
        outcome = app(argv, standalone_mode=False)  # click hands back typer.Exit's code here
    except typer.Exit as exc:
        return exc.exit_code
    return outcome if isinstance(outcome, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
