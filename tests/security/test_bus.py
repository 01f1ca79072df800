"""#17 item 5: whoever reaches the broker is staff.

The attacker can publish on RabbitMQ (a foothold in the cluster network, a leaked broker password) and calls a
staff-only RPC directly, skipping the gateway: with a bare staff actor, with a staff actor signed by a key of
their own, and with a real staff actor captured from the bus after it expired. Each is refused with
``Unauthorized`` and creates nothing; the same call through the gateway works. The platform runs with the
development actor key (deploy/platform.py, as ``make run``), which the attacker of the expired-token test is
granted on purpose: even the right key cannot revive an expired actor.
"""

from __future__ import annotations

import time
import uuid

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from credence_common.contracts.errors import Unauthorized
from credence_common.security.actor_tokens import DEVELOPMENT_SIGNING_KEY, ActorSigner, new_key_pair

PASSWORD = "Bus-rider 73 lantern"


def new_staff_request() -> dict:
    return {"username": f"mallory-{uuid.uuid4().hex[:10]}", "display_name": "Mallory", "password": PASSWORD}


def staff_sign_in(platform, username: str):
    import requests

    return requests.post(platform.gateway_url + "/api/v1/auth/staff-token", timeout=15,
                         json={"username": username, "password": PASSWORD})


def create_staff_on_the_bus(platform, actor) -> Unauthorized:
    """identity.create_staff_account straight on the broker, as an attacker with a standalone nameko client."""
    request = new_staff_request()
    with ServiceRpcProxy("identity", {"AMQP_URI": platform.env["AMQP_URI"]}, timeout=30) as identity:
        with pytest.raises(Unauthorized) as refused:
            identity.create_staff_account(actor, request)
    # nothing was created: the would-be account cannot sign in
    assert staff_sign_in(platform, request["username"]).status_code == 401
    return refused.value


def test_an_rpc_on_the_bus_claiming_staff_without_a_signature_is_refused(secure_platform):
    refusal = create_staff_on_the_bus(secure_platform, {"subject": "staff:admin", "role": "staff"})
    assert refusal.code == "actor_not_signed"


def test_an_rpc_on_the_bus_with_a_staff_actor_signed_by_another_key_is_refused(secure_platform):
    own_key, _ = new_key_pair("dev")  # even reusing the key id the services know
    forged = ActorSigner.from_spec(own_key).sign("staff:admin", "staff")
    assert create_staff_on_the_bus(secure_platform, forged).code == "actor_not_signed"


def test_an_rpc_on_the_bus_replaying_an_expired_staff_actor_is_refused(secure_platform):
    signing_key = secure_platform.env.get("ACTOR_SIGNING_KEY") or DEVELOPMENT_SIGNING_KEY
    captured = ActorSigner.from_spec(signing_key, lifetime_seconds=90).sign("staff:admin", "staff",
                                                                            now=time.time() - 600)
    assert create_staff_on_the_bus(secure_platform, captured).code == "actor_not_signed"


def test_staff_acting_through_the_gateway_still_works(secure_platform, journey):
    import requests

    request = new_staff_request()
    created = requests.post(secure_platform.gateway_url + "/api/v1/staff-accounts", timeout=15, json=request,
                            headers={"Authorization": f"Bearer {journey['staff_token']}"})
    assert created.status_code == 201, created.text
    assert staff_sign_in(secure_platform, request["username"]).status_code == 200
