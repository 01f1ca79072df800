"""The RPC request queue of a service (``rpc-<service>``) as a quorum queue, replicated over a cluster's nodes.

nameko 2.14 declares it as a durable classic queue. In a RabbitMQ cluster a classic queue lives on one node: when
that node dies the queue is gone until it comes back (declaring it answers 404 "home node ... is down or
inaccessible", every caller's request is unroutable, and the service's consumer cannot start on another node).
A quorum queue has a member on every node and elects a new leader within seconds.

``ReplicatedRpcConsumer`` is nameko's ``RpcConsumer`` (one per container, shared by the ``@rpc`` entrypoints) whose
queue is declared before nameko's consumer starts, through credence_common/bus/queues.py: as ``RPC_QUEUE_TYPE``
says (classic by default, quorum on a cluster: ``rpc_queue_type`` says why), or as the type it already has. A
deployment upgraded from classic RPC queues therefore
keeps them (a warning names the command that converts them, credence_common/bus/queue_admin.py ``migrate``);
nothing fails to start.

A reply queue belongs to one caller and lives on the node it declared it on. nameko's (``rpc.reply-<service>-<uuid>``,
of a service that calls another through ``RpcProxy``) is durable, and has one name for the life of the process:
after its node died, the caller reconnecting to another node could not declare it again (404), and nameko's
consumer would stop the whole service. ``RpcProxy`` here declares it exclusive to the connection that consumes
it, under a fresh name on every reconnection (``ReplyQueueConsumer``), as the gateway does (gateway/amqp_rpc.py
``RpcClient._listen``). A fresh name, because with the same one a caller that reconnected at once declared the
queue again on another node while the cluster still held the record of the one on the dead node; the node's
clean-up then deleted the queue with its binding, and every reply to that service was dropped for good
(certificates' calls to payments, seen in the cluster fault suite, tests/faults/cluster.py, 2026-12-07, when
the queue was transient under one name). Exclusive, because the queue is then of no use once its connection has
gone (the broker deletes it with the connection, leaving nothing behind), and because RabbitMQ deprecates
transient queues that are not exclusive (4.3 refuses them). A reply in flight when its queue goes is lost; that
call ends at its deadline, and the caller retries with its ``Idempotency-Key``. docs/operations.md "Running on a
RabbitMQ cluster".
"""

from __future__ import annotations

import uuid
from typing import Any

from kombu import Connection, Queue
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.messaging import QueueConsumer
from nameko.rpc import RPC_REPLY_QUEUE_TEMPLATE, ReplyListener, RpcConsumer
from nameko.rpc import RpcProxy as NamekoRpcProxy

from credence_common.bus.queues import CLASSIC, QUORUM, declare_event_queue
from credence_common.persistence.messaging import wait_for_broker

RPC_QUEUE_TYPE_CONFIG = "RPC_QUEUE_TYPE"


def rpc_queue_type(config) -> str:
    """``RPC_QUEUE_TYPE``: classic by default, quorum on a cluster. A quorum queue's every message waits for its
    Raft log on disk before delivery: about 1.3 ms more per call measured on one node here (a persistent message
    published and taken back, 2026-12-07: classic 0.26-0.29 ms, quorum 1.61-1.69 ms), which a single node pays for
    nothing, a call being useless once its caller's deadline has passed. On a cluster that is the price of a
    service that keeps consuming when a node dies (docs/operations.md "Running on a RabbitMQ cluster")."""
    queue_type = str(config.get(RPC_QUEUE_TYPE_CONFIG, CLASSIC) or CLASSIC).strip().lower()
    if queue_type not in (QUORUM, CLASSIC):
        raise ValueError(f"{RPC_QUEUE_TYPE_CONFIG} is 'quorum' or 'classic', not {queue_type!r}")
    return queue_type


RPC_HINT = ("stop every instance of the service, run `python -m credence_common.bus.queue_admin migrate {service} "
            "--rpc-to {{preferred}}` (also `credence queues migrate`) and start them again to make it a {{preferred}} "
            "queue (the calls waiting in it are dropped)")


class ReplicatedRpcConsumer(RpcConsumer):
    queue_type: str | None = None

    def setup(self):
        super().setup()  # nameko's queue: rpc-<service>, durable, bound to nameko-rpc with <service>.*
        if self.queue_type is not None:  # already declared (setup runs once per container; be safe)
            return
        config = self.container.config
        amqp_uri = config[AMQP_URI_CONFIG_KEY]
        wait_for_broker(amqp_uri, self.container.service_name)  # start-up waits instead of crashing
        with Connection(amqp_uri) as connection:
            # fixes the queue's arguments before nameko's consumer declares it (again on every reconnection)
            self.queue_type = declare_event_queue(connection, self.queue, rpc_queue_type(config),
                                                  hint=RPC_HINT.format(service=self.container.service_name))


class ReplyQueueConsumer(QueueConsumer):
    """The consumer of a service's reply queue, on a connection of its own (the service's other consumers keep
    nameko's): each reconnection consumes from a reply queue of a fresh name (see the module's docstring)."""

    def get_consumers(self, consumer_cls, channel):  # kombu calls it after every (re)connection
        for provider in self._providers:
            provider.prepare_queue()
        consumers = super().get_consumers(consumer_cls, channel)  # kombu's Consumer declares and binds here
        for provider in self._providers:
            provider.queue_declared()
        return consumers


class ExclusiveReplyListener(ReplyListener):
    """nameko's reply listener with an exclusive reply queue, renamed on every reconnection (module docstring)."""

    queue_consumer = ReplyQueueConsumer()
    queue: Any  # kombu's Queue: nameko's setup sets it, prepare_queue replaces it
    _connected_before = False

    def setup(self):
        super().setup()  # the first connection declares this name: calls made while it connects already name it
        self.queue.durable, self.queue.exclusive = False, True

    def prepare_queue(self) -> None:
        """On a reconnection, a reply queue of a new name for the consumer to declare. Calls go on naming the old
        key in ``reply_to`` until ``queue_declared``: a call waiting on the old queue ends at its deadline."""
        if not self._connected_before:
            self._connected_before = True
            return
        key = str(uuid.uuid4())
        self.queue = Queue(RPC_REPLY_QUEUE_TEMPLATE.format(self.container.service_name, key),
                           exchange=self.queue.exchange, routing_key=key, durable=False, exclusive=True,
                           queue_arguments=dict(self.queue.queue_arguments or {}))

    def queue_declared(self) -> None:
        """The queue is declared and bound: calls from now on name it (a reply is never routed to nowhere)."""
        self.routing_key = self.queue.routing_key


class RpcProxy(NamekoRpcProxy):
    """nameko's ``RpcProxy`` whose replies come back through an exclusive queue (``ExclusiveReplyListener``)."""

    rpc_reply_listener = ExclusiveReplyListener()
