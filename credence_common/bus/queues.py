"""The type of the platform's event queues: quorum where the broker has them, classic where one already is.

Every queue that holds events (a handler's queue, the delay queues of its retries, the dead-letter queue) is
declared durable and, by default, as a quorum queue (``EVENT_QUEUE_TYPE=quorum``): replicated over the
nodes of a RabbitMQ cluster, so losing one node loses no event. ``EVENT_QUEUE_TYPE=classic`` keeps single-node
classic queues (a broker older than 3.10, where quorum queues have no message TTL).

A queue's type cannot change once declared, and declaring it as the other type is refused by the broker. A
platform upgraded from classic queues therefore keeps using them (with a warning in the log naming the
command that converts them, ``credence queues migrate``: credence_common/bus/queue_admin.py) rather than failing
to start.

The RPC request queues (``rpc-<service>``) go through the same declaration (credence_common/bus/rpc_queue.py):
in a cluster a classic queue lives on one node and is gone while that node is down. ``migrate`` converts them too
(``--rpc-to``).

This module only declares queues; the platform's list of queues, their state and their conversion are in
queue_admin.py, which builds on the outbox relay and the event handlers that build on this one (no import cycle).
"""

from __future__ import annotations

import logging
import time

import amqp.exceptions
from kombu import Connection, Queue

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
            close_quietly(channel)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


MIGRATE_HINT = "`python -m credence_common.bus.queue_admin migrate` makes it a {preferred} queue"


def declare_event_queue(connection: Connection, queue: Queue, preferred: str,
                        patience: float = DECLARE_PATIENCE_SECONDS, hint: str = MIGRATE_HINT) -> str:
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
            log.warning("queue %s is a %s queue, kept as it is; %s", queue.name, queue_type,
                        hint.format(preferred=preferred))
        return queue_type
    raise RuntimeError(f"queue {queue.name} could not be declared as either type")  # pragma: no cover


def close_quietly(channel) -> None:
    try:
        channel.close()
    except Exception:  # already closed by the broker after a refused declaration
        pass
