"""deploy/broker_users.py: the per-process broker permissions follow the code's topology
(the broker itself is in tests/integration/test_broker_users.py)."""

from __future__ import annotations

import re

import pytest
from nameko.rpc import RpcProxy

from credence_common.contracts.topology import SUBSCRIPTIONS
from credence_common.runtime.runner import load_service_class
from deploy import broker_users
from deploy.processes import PROCESSES


def matches(pattern: str, name: str) -> bool:
    return re.fullmatch(pattern, name) is not None


def test_the_rpc_callees_are_the_rpc_proxies_of_the_code():
    for spec in PROCESSES:
        cls = load_service_class(spec.service_class)
        proxies = {value.target_service for value in vars(cls).values() if isinstance(value, RpcProxy)}
        assert proxies == set(broker_users.RPC_CALLEES.get(spec.name, ())), spec.name


@pytest.mark.parametrize("principal", broker_users.PRINCIPALS)
def test_each_user_reaches_its_own_queues_and_no_other_service_queue(principal):
    rules = broker_users.permissions(principal)
    for other in broker_users.PRINCIPALS:
        own = other == principal
        assert matches(rules["read"], f"rpc-{other}") is (own and other != "gateway")
        assert matches(rules["read"], f"rpc.reply-{other}-0b5e6c1a-8f8e-4a8e-9a35-2b8f5c7d9e10") is own
        assert not matches(rules["read"], f"rpc.reply-{other}-anything")
    for subscription in SUBSCRIPTIONS:
        assert matches(rules["read"], subscription.queue_name) is (subscription.consumer == principal)
        assert matches(rules["configure"], subscription.queue_name) is (principal in (subscription.consumer,
                                                                                     subscription.publisher))
    assert not matches(rules["configure"], ".*") and not matches(rules["write"], "amq.topic")


@pytest.mark.parametrize("principal", broker_users.PRINCIPALS)
def test_only_the_gateway_may_publish_calls_to_every_service(principal):
    topic = broker_users.topic_permissions(principal)
    for callee in broker_users.PRINCIPALS:
        allowed = callee in broker_users.RPC_CALLEES.get(principal, ())
        assert matches(topic["write"], f"{callee}.create_staff_account") is allowed
        assert matches(topic["read"], f"{callee}.*") is (callee == principal and principal != "gateway")
    assert matches(topic["write"], "0b5e6c1a-8f8e-4a8e-9a35-2b8f5c7d9e10")  # replies


def test_only_services_may_write_to_the_default_exchange():
    for principal in broker_users.PRINCIPALS:
        assert matches(broker_users.permissions(principal)["write"], "amq.default") is (principal != "gateway")
