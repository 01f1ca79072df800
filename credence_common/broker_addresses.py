"""The broker's addresses: ``AMQP_URI`` may name every node of a RabbitMQ cluster, separated by ``;``.

    AMQP_URI=pyamqp://user:secret@rabbit-a:5672//;pyamqp://user:secret@rabbit-b:5672//;pyamqp://user:secret@rabbit-c:5672//

That is kombu's failover syntax, which nameko hands to kombu unchanged: every kombu ``Connection`` (the services'
consumers, publishers, the outbox relay, the reply channel) tries the next node when the one it uses goes away.
The clients that are not kombu take the same value through this module (outside the layered packages of
credence_common, so that config.py, which checks the broker user, can use it too): the gateway's aio-pika RPC client
(gateway/amqp_rpc.py) and the pika tools (dead letters, the registry subscriber) get the list of nodes and try
them in turn. docs/operations.md "Running on a RabbitMQ cluster".
"""

from __future__ import annotations

from urllib.parse import urlsplit

SEPARATOR = ";"


def broker_uris(amqp_uri: str) -> list[str]:
    """Every node's URI, in the order given (blank entries and surrounding spaces dropped). A URI without a user
    or password (kombu fills them from the first one: ``pyamqp://u:p@a//;pyamqp://b//``) gets the first's."""
    uris = [part.strip() for part in str(amqp_uri or "").split(SEPARATOR) if part.strip()]
    if not uris:
        return []
    first = urlsplit(uris[0])
    completed = [uris[0]]
    for uri in uris[1:]:
        parts = urlsplit(uri)
        if parts.username is None and first.username is not None:
            credentials = first.netloc.rsplit("@", 1)[0]
            uri = parts._replace(netloc=f"{credentials}@{parts.netloc}").geturl()
        completed.append(uri)
    return completed


def first_broker_uri(amqp_uri: str) -> str:
    uris = broker_uris(amqp_uri)
    return uris[0] if uris else ""


def pika_parameters(amqp_uri: str) -> list:
    """pika's ``URLParameters`` of every node: ``pika.BlockingConnection`` takes the list and connects to the
    first that answers."""
    import pika

    return [pika.URLParameters(uri.replace("pyamqp://", "amqp://", 1)) for uri in broker_uris(amqp_uri)]
