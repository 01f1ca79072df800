"""The RPC request queue of a service (``rpc-<service>``) as a quorum queue, replicated over a cluster's nodes.

nameko 2.14 declares it as a durable classic queue. In a RabbitMQ cluster a classic queue lives on one node: when
that node dies the queue is gone until it comes back (declaring it answers 404 "home node ... is down or
inaccessible", every caller's request is unroutable, and the service's consumer cannot start on another node).
A quorum queue has a member on every node and elects a new leader within seconds.

``ReplicatedRpcConsumer`` is nameko's ``RpcConsumer`` (one per container, shared by the ``@rpc`` entrypoints) whose
queue is declared before nameko's consumer starts, through credence_common/bus/queues.py: as ``RPC_QUEUE_TYPE``
says (classic by default, quorum on a cluster: ``rpc_queue_type`` says why), or as the type it already has. A
deployment upgraded from classic RPC queues therefore
keeps them (a warning says how to convert); nothing fails to start.

A reply queue belongs to one caller and lives on the node it declared it on. nameko's (``rpc.reply-<service>-<uuid>``,
of a service that calls another through ``RpcProxy``) is durable: after its node died, the caller reconnecting to
another node could not declare it again (404), and nameko's consumer would stop the whole service.
``RpcProxy`` here declares it transient instead: a node that goes down takes its transient queues with it, so the
caller declares it afresh on the node it reconnects to (a link that merely drops keeps it, with the replies in it).
The gateway's reply queue (gateway/amqp_rpc.py) is exclusive: it dies with the connection and is declared again
on the next one. A reply in flight when its queue goes is lost; that call ends at its deadline, and the caller
retries with its ``Idempotency-Key``. docs/operations.md "Running on a RabbitMQ cluster".
"""

from __future__ import annotations

from kombu import Connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.rpc import ReplyListener, RpcConsumer
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


RPC_HINT = ("stop every instance of the service, delete the queue (`rabbitmqctl delete_queue {queue}`) and start them "
            "again to make it a {{preferred}} queue")


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
                                                  hint=RPC_HINT.format(queue=self.queue.name))


class TransientReplyListener(ReplyListener):
    """nameko's reply listener with a transient (non-durable) reply queue: see the module's docstring."""

    def setup(self):
        super().setup()
        self.queue.durable = False


class RpcProxy(NamekoRpcProxy):
    """nameko's ``RpcProxy`` whose replies come back through a transient queue (``TransientReplyListener``)."""

    rpc_reply_listener = TransientReplyListener()
