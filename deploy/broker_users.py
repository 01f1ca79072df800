"""One RabbitMQ user per process, allowed only its own queues and exchanges: the one owner of the broker
permissions, generated from the code's topology (nameko RPC, credence_common/contracts/topology.py, the
reliable event handlers' dead-letter and retry queues).

``docker-compose.yml`` creates the users at each start with the one-shot job ``broker-users`` (``apply``, through
the management API: the passwords come from the environment, so no file with them is committed), and Kubernetes
with the ``User``/``Permission``/``TopicPermission`` resources in deploy/k8s/base/rabbitmq-users.yaml;
tests/unit/test_compose.py and test_k8s.py check both against this module, tests/integration/
test_broker_users.py applies them to a real broker and proves what they allow and refuse.

    python -m deploy.broker_users k8s > deploy/k8s/base/rabbitmq-users.yaml
    RABBITMQ_MANAGEMENT_URI=http://admin:…@rabbitmq:15672 IDENTITY_RABBITMQ_PASSWORD=… … \
        python -m deploy.broker_users apply

What a user may do (RabbitMQ checks configure = declare, write = publish and bind a queue, read = consume and
bind from an exchange):
- its own RPC queue ``rpc-<service>`` and its reply queues ``rpc.reply-<service>-<uuid>``, and on the
  ``nameko-rpc`` topic exchange only the routing keys it answers (reply ids) or calls: the gateway calls
  every service, verification calls scoring, certificates calls payments (its fee schedule), the other services
  call no one. No service can bind another's RPC routing key (and read its calls) or publish a call as the
  gateway does.
- its own event exchange ``<service>.events`` and the queues of its subscribers (a publisher declares them,
  so that no event is dropped before the consumer starts; it may bind them, never read them);
- the event queues it consumes, the exchanges they are bound to, its dead-letter queue and retry queues.
A service's user may write to the default exchange (``amq.default``): its retry queues dead-letter through it
back to the handler queue, and RabbitMQ asks the declaring user for that right. It lets the user publish into
any queue by name (a message straight into ``rpc-identity``); what such a message claims is refused by the
signed-actor check (credence_common/security/actor_tokens.py). The gateway's user has no such right. The operator's
commands (``credence ...``) run with an administrator's ``AMQP_URI`` (docs/operations.md).
"""

from __future__ import annotations

import os
import re
import sys
from urllib.parse import quote, unquote, urlsplit

from credence_common.bus.reliable_events import dead_letter_queue_name
from credence_common.contracts.envelope import exchange_name
from credence_common.contracts.topology import SUBSCRIPTIONS
from deploy.processes import SERVICE_NAMES

RPC_EXCHANGE = "nameko-rpc"
PRINCIPALS = (*SERVICE_NAMES, "gateway")
# whom each process calls by RPC (a test checks it against the RpcProxy dependencies of the code)
RPC_CALLEES: dict[str, tuple[str, ...]] = {
    "gateway": SERVICE_NAMES,
    "verification": ("scoring",),
    "certificates": ("payments",),  # payments' fee schedule: the one owner of the fees
}
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VHOST = "/"


def user_name(principal: str) -> str:
    return f"credence-{principal}"


def _any_of(patterns: list[str]) -> str:
    return "^(" + "|".join(sorted(set(patterns))) + ")$"


def _resources(principal: str) -> dict[str, list[str]]:
    """Regex pieces (escaped, unanchored) per permission kind."""
    own_rpc = [re.escape(RPC_EXCHANGE), re.escape(f"rpc.reply-{principal}-") + UUID]
    configure, write, read = list(own_rpc), list(own_rpc), list(own_rpc)
    if principal in SERVICE_NAMES:
        queue = re.escape(f"rpc-{principal}")
        configure.append(queue), write.append(queue), read.append(queue)
        own_events = re.escape(exchange_name(principal))
        configure.append(own_events), write.append(own_events), read.append(own_events)
        dead_letters = re.escape(dead_letter_queue_name(principal))  # the queue and its exchange
        retries = re.escape(f"credence.retry.{principal}.") + "[0-9]+ms"  # the queues and their exchanges
        configure += [dead_letters, retries]
        write += [dead_letters, retries, re.escape("amq.default")]  # dead letters, and the retry queues' way back
        read += [dead_letters, retries]
    for subscription in SUBSCRIPTIONS:
        queue = re.escape(subscription.queue_name)
        if subscription.consumer == principal:
            exchange = re.escape(exchange_name(subscription.publisher))
            configure += [queue, exchange]
            write.append(queue)  # to bind it
            read += [queue, exchange]
        if subscription.publisher == principal:
            configure.append(queue)
            write.append(queue)  # to bind it to its own exchange; never read: the events are the consumer's
    return {"configure": configure, "write": write, "read": read}


def permissions(principal: str) -> dict[str, str]:
    return {kind: _any_of(patterns) for kind, patterns in _resources(principal).items()}


def topic_permissions(principal: str) -> dict[str, str]:
    """On ``nameko-rpc``: which routing keys it may publish (replies, calls to its callees) and bind (its own
    requests ``<service>.*``, its reply ids)."""
    calls = [re.escape(callee) + r"\.[A-Za-z0-9_]+" for callee in RPC_CALLEES.get(principal, ())]
    own = [re.escape(principal) + r"\.\*"] if principal in SERVICE_NAMES else []
    return {"exchange": RPC_EXCHANGE, "write": _any_of([UUID, *calls]), "read": _any_of([UUID, *own])}


def password_variable(principal: str) -> str:
    """The setting that holds a process's broker password (docker-compose.yml; the broker-users job reads all)."""
    return f"{principal.upper()}_RABBITMQ_PASSWORD"


def apply(management_uri: str, passwords: dict[str, str], vhost: str = VHOST, suffix: str = "") -> list[str]:
    """Create or update every process's user with its password, permissions and topic permissions through the
    management API (idempotent: docker-compose runs it at each start). Returns the user names."""
    import requests

    api = management_uri.rstrip("/")
    parts = urlsplit(api)
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    base = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
    where = quote(vhost, safe="")
    names = []
    for principal in PRINCIPALS:
        password = passwords.get(principal)
        if not password:
            raise ValueError(f"no broker password for {principal} ({password_variable(principal)})")
        name = user_name(principal) + suffix
        for path, body in ((f"/api/users/{quote(name, safe='')}", {"password": password, "tags": ""}),
                           (f"/api/permissions/{where}/{quote(name, safe='')}", permissions(principal)),
                           (f"/api/topic-permissions/{where}/{quote(name, safe='')}", topic_permissions(principal))):
            requests.put(base + path, json=body, auth=auth, timeout=10).raise_for_status()
        names.append(name)
    return names


def k8s_resources(cluster: str = "credence-rabbitmq") -> list[dict]:
    """The messaging-topology-operator's ``User``, ``Permission`` and ``TopicPermission`` per process; each user's
    password is in the Secret ``credence-<process>-rabbitmq`` (keys username, password)."""
    resources = []
    for principal in PRINCIPALS:
        name = user_name(principal)
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "broker-user"}
        reference = {"name": cluster}
        resources.append({"apiVersion": "rabbitmq.com/v1beta1", "kind": "User",
                          "metadata": {"name": name, "labels": labels},
                          "spec": {"rabbitmqClusterReference": reference, "tags": [],
                                   "importCredentialsSecret": {"name": f"credence-{principal}-rabbitmq"}}})
        rules = permissions(principal)
        resources.append({"apiVersion": "rabbitmq.com/v1beta1", "kind": "Permission",
                          "metadata": {"name": name, "labels": labels},
                          "spec": {"rabbitmqClusterReference": reference, "vhost": VHOST, "user": name,
                                   "permissions": rules}})
        topic = topic_permissions(principal)
        resources.append({"apiVersion": "rabbitmq.com/v1beta1", "kind": "TopicPermission",
                          "metadata": {"name": name, "labels": labels},
                          "spec": {"rabbitmqClusterReference": reference, "vhost": VHOST, "user": name,
                                   "permissions": {"exchange": topic["exchange"], "write": topic["write"],
                                                   "read": topic["read"]}}})
    return resources


HEADER = ("# Generated by `python -m deploy.broker_users k8s` from the code's topology (deploy/broker_users.py);\n"
          "# tests/unit/test_k8s.py fails when it is stale. One RabbitMQ user per process, limited to its own\n"
          "# queues and exchanges (messaging-topology-operator resources; the password of each is in the Secret\n"
          "# credence-<process>-rabbitmq, keys username and password).\n")


def render_k8s() -> str:
    import yaml

    return HEADER + "---\n".join(yaml.safe_dump(resource, sort_keys=False, width=200) for resource in k8s_resources())


def main(argv: list[str]) -> int:
    if argv == ["k8s"]:
        sys.stdout.write(render_k8s())
        return 0
    if argv == ["apply"]:
        # the docker-compose job: RABBITMQ_MANAGEMENT_URI (an administrator's) and <PROCESS>_RABBITMQ_PASSWORD
        passwords = {principal: os.environ.get(password_variable(principal), "") for principal in PRINCIPALS}
        try:
            names = apply(os.environ["RABBITMQ_MANAGEMENT_URI"], passwords)
        except (KeyError, ValueError) as problem:
            print(f"broker users: {problem}", file=sys.stderr)
            return 2
        print("broker users ready: " + ", ".join(names))
        return 0
    print("usage: python -m deploy.broker_users k8s|apply", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
