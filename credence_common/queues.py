"""The type of the platform's event queues: quorum where the broker has them, classic where one already is.

Every queue that holds events (a handler's queue, the delay queues of its retries, the dead-letter queue) is
declared durable and, by default, as a quorum queue (``EVENT_QUEUE_TYPE=quorum``): replicated over the
nodes of a RabbitMQ cluster, so losing one node loses no event. ``EVENT_QUEUE_TYPE=classic`` keeps single-node
classic queues (a broker older than 3.10, where quorum queues have no message TTL).

A queue's type cannot change once declared, and declaring it as the other type is refused by the broker. A
platform upgraded from classic queues therefore keeps using them (with a warning in the log naming the
command that converts them) rather than failing to start:

    python -m credence_common.queues status              # every event queue: type, messages, consumers
    python -m credence_common.queues migrate SERVICE     # its classic queues become quorum queues

``migrate`` moves the messages through a temporary quorum queue and keeps the bindings, so no event is lost;
an event published during the move may be delivered twice (consumers deduplicate by event id). It refuses a
queue that has consumers: stop the service's consumers first (scale it to 0), then start them again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import amqp.exceptions
from kombu import Connection, Exchange, Queue

log = logging.getLogger(__name__)

QUORUM = "quorum"
CLASSIC = "classic"
QUEUE_TYPE_CONFIG = "EVENT_QUEUE_TYPE"
TYPE_ARGUMENT = "x-queue-type"


def preferred_queue_type(config) -> str:
    queue_type = str(config.get(QUEUE_TYPE_CONFIG, QUORUM) or QUORUM).strip().lower()
    if queue_type not in (QUORUM, CLASSIC):
        raise ValueError(f"{QUEUE_TYPE_CONFIG} is 'quorum' or 'classic', not {queue_type!r}")
    return queue_type


def queue_arguments(queue_type: str, arguments: dict | None = None) -> dict:
    """``arguments`` plus what ``queue_type`` needs. A quorum queue that dead-letters (the retry delay queues)
    does it at least once: by default a quorum queue dead-letters at most once, which could drop a retry."""
    arguments = {key: value for key, value in (arguments or {}).items()
                 if key not in (TYPE_ARGUMENT, "x-dead-letter-strategy", "x-overflow")}
    arguments[TYPE_ARGUMENT] = queue_type
    if queue_type == QUORUM and "x-dead-letter-exchange" in arguments:
        arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    return arguments


def _other(queue_type: str) -> str:
    return CLASSIC if queue_type == QUORUM else QUORUM


def _type_refused(exc: Exception) -> bool:
    return isinstance(exc, amqp.exceptions.PreconditionFailed) and TYPE_ARGUMENT in str(exc)


# A busy broker can answer a quorum queue's declaration with 404 while the queue's Raft members are still
# starting ("home node ... is down or inaccessible", "... due to timeout"): seen on a loaded CI machine with a
# single node. It passes; a service that crashed on it would restart into the same race.
_PASSING_REFUSALS = ("is down or inaccessible", "due to timeout")
DECLARE_PATIENCE_SECONDS = 30.0


def _passing(exc: Exception) -> bool:
    return isinstance(exc, amqp.exceptions.NotFound) and any(text in str(exc) for text in _PASSING_REFUSALS)


def _declare(connection: Connection, queue: Queue, patience: float) -> None:
    deadline = time.monotonic() + patience
    pause = 0.1
    while True:
        channel = connection.channel()
        try:
            queue(channel).declare()
            return
        except amqp.exceptions.NotFound as exc:
            if not _passing(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("queue %s not declared yet (%s); trying again in %.1f s", queue.name, exc, pause)
        finally:
            _close_quietly(channel)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def declare_event_queue(connection: Connection, queue: Queue, preferred: str,
                        patience: float = DECLARE_PATIENCE_SECONDS) -> str:
    """Declare ``queue`` (durable, with its bindings) as ``preferred``, or as the type it already has.

    Sets ``queue.queue_arguments`` to what was declared, so that whoever declares it again (nameko's consumer
    on every reconnection) declares the same thing. Returns the type. A refusal that passes (a quorum queue's
    members still starting) is tried again for up to ``patience`` seconds."""
    base = dict(queue.queue_arguments or {})
    for queue_type in (preferred, _other(preferred)):
        queue.queue_arguments = queue_arguments(queue_type, base)
        try:
            _declare(connection, queue, patience)
        except amqp.exceptions.PreconditionFailed as exc:
            if not _type_refused(exc):
                raise
            continue  # the broker closed the channel; try the type the queue already has
        if queue_type != preferred:
            log.warning("queue %s is a %s queue, kept as it is; `python -m credence_common.queues migrate` makes "
                        "it a %s queue", queue.name, queue_type, preferred)
        return queue_type
    raise RuntimeError(f"queue {queue.name} could not be declared as either type")  # pragma: no cover


def _close_quietly(channel) -> None:
    try:
        channel.close()
    except Exception:  # already closed by the broker after a refused declaration
        pass


# --- what the platform declares, for status and migrate ---------------------------------------------------


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
    from credence_common.contracts.topology import SUBSCRIPTIONS
    from credence_common.outbox_relay import event_exchange
    from credence_common.reliable_events import (
        dead_letter_queue_name,
        retry_delays,
        retry_queue_arguments,
        retry_queue_name,
    )

    queues = [EventQueue(s.queue_name, s.consumer, [(event_exchange(s.publisher), s.event.event_type)])
              for s in SUBSCRIPTIONS]
    for service in sorted({s.consumer for s in SUBSCRIPTIONS}):
        queues.append(EventQueue(dead_letter_queue_name(service), service))
        for delay in retry_delays(retry_base_seconds, max_attempts):
            name = retry_queue_name(service, delay)
            queues.append(EventQueue(name, service, [(Exchange(name, type="fanout", durable=True), "")],
                                     retry_queue_arguments(delay)))
    return queues


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
        _close_quietly(channel)
        return QueueState(event_queue.name, event_queue.service, None, 0, 0)
    _close_quietly(channel)
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
            _close_quietly(channel)
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
        _close_quietly(channel)
    # a fresh channel: RabbitMQ 3.10 crashes a channel that publishes to a queue it knew as the other type
    channel = connection.channel()
    try:
        event_queue.queue(to_type)(channel).declare()
        for exchange, routing_key in holding.bindings:
            channel.queue_unbind(holding.name, exchange.name, routing_key)
        _move(channel, holding.name, event_queue.name)
        _delete_drained(channel, holding.name, to_type)
    finally:
        _close_quietly(channel)
    log.info("queue %s is now a %s queue (%d message(s) moved)", event_queue.name, to_type, moved)
    return moved


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

    app = typer.Typer(add_completion=False, help="The platform's event queues: their type, and conversion to "
                                                 "quorum queues. The broker is AMQP_URI; retry queues follow "
                                                 "EVENT_RETRY_BASE_SECONDS and EVENT_MAX_ATTEMPTS.")
    console = Console()

    @app.command()
    def status(service: str = typer.Argument(None, help="only this service's queues")) -> None:
        """Every event queue: type, messages waiting, consumers."""
        amqp_uri, base, attempts = _settings()
        table = Table("queue", "service", "type", "messages", "consumers")
        with Connection(amqp_uri) as connection:
            for event_queue in _selected(platform_queues(base, attempts), service):
                state = queue_state(connection, event_queue)
                table.add_row(state.name, state.service, state.queue_type or "[dim]not declared[/dim]",
                              str(state.messages), str(state.consumers))
        console.print(table)

    @app.command()
    def migrate(service: str = typer.Argument(..., help="the service whose queues to convert ('all' for every one)"),
                to: str = typer.Option(QUORUM, help="quorum or classic")) -> None:
        """Convert a service's event queues to quorum queues (stop its consumers first)."""
        amqp_uri, base, attempts = _settings()
        to_type = preferred_queue_type({QUEUE_TYPE_CONFIG: to})
        queues = _selected(platform_queues(base, attempts), None if service == "all" else service)
        if not queues:
            console.print(f"[red]no event queues for {service!r}[/red]")
            raise typer.Exit(2)
        everything = platform_queues(base, attempts)
        with Connection(amqp_uri) as connection:
            for event_queue in queues:
                retry_queues = [q for q in everything if q.service == event_queue.service and ".retry." in q.name]
                try:
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
