"""Look at, replay and purge a service's dead letters: the messages its event handlers gave up on.

    python -m credence_common.bus.dead_letters list SERVICE         # position, event, source queue, attempts, reason
    python -m credence_common.bus.dead_letters show SERVICE N       # one message: headers and body
    python -m credence_common.bus.dead_letters replay SERVICE N...  # back to their queues (or --all), attempts reset
    python -m credence_common.bus.dead_letters purge SERVICE --yes

The broker is ``AMQP_URI`` (default the local one), as the services read it. Listing takes the messages and
puts them back unacknowledged, so the queue is unchanged; replaying publishes a copy (confirmed) to the
queue the message failed on, then removes it from the dead letters. Consumers deduplicate by event id, so a
message replayed twice is applied once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pika
import typer
from rich.console import Console
from rich.table import Table

from credence_common.broker_addresses import pika_parameters
from credence_common.bus.reliable_events import (
    ATTEMPT_HEADER,
    FAILED_AT_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    dead_letter_queue_name,
)

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class DeadLetter:
    position: int
    source_queue: str
    attempts: int
    reason: str
    failed_at: str
    event_id: str | None
    event_type: str | None
    body: bytes
    headers: dict


def _parameters(amqp_uri: str) -> list[pika.URLParameters]:
    """Every node ``AMQP_URI`` names (a cluster's, ``;``-separated): pika connects to the first that answers."""
    return pika_parameters(amqp_uri)


def _describe(position: int, body: bytes, headers: dict) -> DeadLetter:
    try:
        envelope = json.loads(body)
        event_id: str | None = str(envelope.get("id"))
        event_type: str | None = str(envelope.get("type"))
    except (ValueError, AttributeError, UnicodeDecodeError):
        event_id = event_type = None
    return DeadLetter(position=position, source_queue=str(headers.get(SOURCE_QUEUE_HEADER, "")),
                      attempts=int(headers.get(ATTEMPT_HEADER, 0)), reason=str(headers.get(REASON_HEADER, "")),
                      failed_at=str(headers.get(FAILED_AT_HEADER, "")), event_id=event_id, event_type=event_type,
                      body=body, headers=headers)


def list_dead_letters(amqp_uri: str, service: str, limit: int = 1000) -> list[DeadLetter]:
    connection = pika.BlockingConnection(_parameters(amqp_uri))
    try:
        channel = connection.channel()
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            method, properties, body = channel.basic_get(dead_letter_queue_name(service), auto_ack=False)
            if method is None:
                break
            letters.append(_describe(len(letters) + 1, body, properties.headers or {}))
        return letters  # closing the channel returns every message, unacknowledged, in its place
    finally:
        connection.close()


def replay(amqp_uri: str, service: str, positions: set[int] | None = None) -> int:
    """Send the chosen dead letters (all when ``positions`` is None) back to their queues. Returns how many."""
    connection = pika.BlockingConnection(_parameters(amqp_uri))
    replayed = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        position = 0
        while True:
            method, properties, body = channel.basic_get(dead_letter_queue_name(service), auto_ack=False)
            if method is None:
                break
            position += 1
            headers = dict(properties.headers or {})
            source = headers.get(SOURCE_QUEUE_HEADER)
            if (positions is not None and position not in positions) or not source:
                continue  # left in place: returned when the channel closes
            for name in (ATTEMPT_HEADER, REASON_HEADER, SOURCE_QUEUE_HEADER, FAILED_AT_HEADER):
                headers.pop(name, None)
            channel.basic_publish("", str(source), body, pika.BasicProperties(
                headers=headers, content_type=properties.content_type, content_encoding=properties.content_encoding,
                delivery_mode=2), mandatory=True)
            channel.basic_ack(method.delivery_tag)
            replayed += 1
        return replayed
    finally:
        connection.close()


def purge(amqp_uri: str, service: str) -> int:
    connection = pika.BlockingConnection(_parameters(amqp_uri))
    try:
        return connection.channel().queue_purge(dead_letter_queue_name(service)).method.message_count
    finally:
        connection.close()


app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console()
AMQP = typer.Option(os.environ.get("AMQP_URI", DEFAULT_AMQP_URI), "--amqp-uri", help="the broker")


@app.command("list")
def list_command(service: str, amqp_uri: str = AMQP) -> None:
    """The dead letters of SERVICE, oldest first."""
    letters = list_dead_letters(amqp_uri, service)
    table = Table(title=f"{dead_letter_queue_name(service)}: {len(letters)} message(s)")
    for column in ("#", "event", "id", "failed on", "attempts", "failed at", "reason"):
        table.add_column(column)
    for letter in letters:
        table.add_row(str(letter.position), letter.event_type or "?", letter.event_id or "?", letter.source_queue,
                      str(letter.attempts), letter.failed_at[:19], letter.reason[:120])
    console.print(table)


@app.command()
def show(service: str, position: int, amqp_uri: str = AMQP) -> None:
    """One dead letter in full."""
    letters = {letter.position: letter for letter in list_dead_letters(amqp_uri, service)}
    if position not in letters:
        console.print(f"No dead letter #{position}.")
        raise typer.Exit(1)
    letter = letters[position]
    console.print_json(json.dumps({k: str(v) for k, v in letter.headers.items()}))
    console.print(letter.body.decode("utf-8", "replace"))


@app.command("replay")
def replay_command(service: str, positions: list[int] = typer.Argument(None), all_: bool = typer.Option(
        False, "--all", help="replay every dead letter"), amqp_uri: str = AMQP) -> None:
    """Send dead letters back to the queues they failed on (after the cause was fixed)."""
    if not positions and not all_:
        console.print("Name the positions to replay, or --all.")
        raise typer.Exit(2)
    count = replay(amqp_uri, service, None if all_ else set(positions))
    console.print(f"Replayed {count} message(s).")


@app.command("purge")
def purge_command(service: str, yes: bool = typer.Option(False, "--yes", help="really delete them"),
                  amqp_uri: str = AMQP) -> None:
    """Delete every dead letter of SERVICE (they are gone for good)."""
    if not yes:
        console.print("This deletes the messages for good; add --yes.")
        raise typer.Exit(2)
    console.print(f"Purged {purge(amqp_uri, service)} message(s).")


if __name__ == "__main__":
    app()
