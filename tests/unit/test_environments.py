"""Which adapters and defaults each CREDENCE_ENV allows, and that a process must be told which one it runs in."""

from types import SimpleNamespace

import pytest

from credence_common.config import (
    ADAPTER_DEFAULTS,
    ConfigurationRefused,
    adapter_refusal,
    assert_safe_for_environment,
    environment,
    is_development,
)
from services.identity.dependencies import DegreeRegistry, IdentityVerifier, Sms
from services.payments.adapters.configuration import configured_payments


@pytest.mark.parametrize("value, expected", [("development", "development"), ("staging", "staging"),
                                             (" Production ", "production"), ("STAGING", "staging")])
def test_the_three_environment_names_are_read_whatever_their_case(value, expected):
    assert environment({"CREDENCE_ENV": value}) == expected


@pytest.mark.parametrize("environ, told", [({}, "is not set"), ({"CREDENCE_ENV": ""}, "is ''"),
                                           ({"CREDENCE_ENV": "  "}, "is '  '"), ({"CREDENCE_ENV": "prod"}, "'prod'"),
                                           ({"CREDENCE_ENV": "dev"}, "'dev'"), ({"OTHER": "development"}, "not set")])
def test_an_unset_empty_or_unknown_environment_is_refused_not_guessed(environ, told):
    with pytest.raises(ConfigurationRefused) as refused:
        environment(environ)
    message = str(refused.value)
    assert told in message and "development, staging or production" in message
    with pytest.raises(ConfigurationRefused):
        is_development(environ)  # nothing that asks the environment gets an answer it would have to guess


@pytest.mark.parametrize("environ", [{}, {"CREDENCE_ENV": ""}, {"CREDENCE_ENV": "prod"}])
def test_the_start_up_check_refuses_without_an_environment_and_names_the_service(environ):
    with pytest.raises(ConfigurationRefused) as refused:
        assert_safe_for_environment("scoring", {"AMQP_URI": "pyamqp://"}, environ=environ)
    assert str(refused.value).startswith("scoring: refusing to start: CREDENCE_ENV ")


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "ten", "86400"])
@pytest.mark.parametrize("env", ["development", "production"])
def test_an_rpc_deadline_no_call_can_carry_is_refused_at_start_in_every_environment(timeout, env):
    with pytest.raises(ConfigurationRefused) as refused:
        assert_safe_for_environment("gateway", {"RPC_TIMEOUT_SECONDS": timeout}, environ={"CREDENCE_ENV": env})
    assert str(refused.value).startswith("gateway: refusing to start: RPC_TIMEOUT_SECONDS must be")


@pytest.mark.parametrize("timeout", ["10", 0.5, 3600])
def test_an_rpc_deadline_in_range_starts(timeout):
    assert assert_safe_for_environment("certificates", {"RPC_TIMEOUT_SECONDS": timeout},
                                       environ={"CREDENCE_ENV": "development"}) is None


def test_development_must_be_said_and_then_allows_the_development_defaults():
    config = {"JWT_SECRET": "dev-insecure-jwt-secret", "IDENTITY_VERIFIER": "sandbox", "SMS_ADAPTER": "dev",
              "DEGREE_REGISTRY": "sandbox", "PAYMENT_PROVIDER": "sandbox"}
    assert assert_safe_for_environment("identity", config, environ={"CREDENCE_ENV": "development"}) is None


def test_staging_also_refuses_development_secrets():
    with pytest.raises(ConfigurationRefused) as refused:
        assert_safe_for_environment("gateway", {"JWT_SECRET": "dev-insecure-jwt-secret"},
                                    environ={"CREDENCE_ENV": "staging"})
    assert "JWT_SECRET" in str(refused.value) and "staging" in str(refused.value)


# setting, value -> the environments that run it
ADAPTERS = [
    ("IDENTITY_VERIFIER", "sandbox", {"development"}),  # would confirm anyone: not even staging
    ("IDENTITY_VERIFIER", "reject", {"development", "staging", "production"}),
    ("DEGREE_REGISTRY", "sandbox", {"development", "staging"}),
    ("DEGREE_REGISTRY", "http", {"development", "staging", "production"}),  # the authority's registry
    ("PAYMENT_PROVIDER", "sandbox", {"development", "staging"}),  # staging cannot pay at it: no route, no RPC
    ("SMS_ADAPTER", "dev", {"development"}),
    ("SMS_ADAPTER", "webhook", {"development", "staging", "production"}),
    ("SMS_ADAPTER", "tencent_sms", {"development", "staging", "production"}),  # a real vendor always may run
]


@pytest.mark.parametrize("setting, value, allowed", ADAPTERS)
@pytest.mark.parametrize("env", ["development", "staging", "production"])
def test_each_adapter_runs_only_where_it_is_allowed(setting, value, allowed, env):
    refusal = adapter_refusal(setting, value, {"CREDENCE_ENV": env})
    if env in allowed:
        assert refusal is None
    else:
        assert refusal.startswith(f"{setting}={value} ") and f"refused in {env}" in refusal


def test_an_absent_adapter_setting_means_the_sandbox_the_service_would_use():
    assert set(ADAPTER_DEFAULTS) == {"IDENTITY_VERIFIER", "DEGREE_REGISTRY", "PAYMENT_PROVIDER", "SMS_ADAPTER"}
    assert adapter_refusal("IDENTITY_VERIFIER", None, {"CREDENCE_ENV": "staging"}).startswith(
        "IDENTITY_VERIFIER=sandbox ")


def test_the_start_up_check_names_every_refused_adapter_of_the_config_and_no_other():
    config = {"JWT_SECRET": "vault-Zq8", "IDENTITY_VERIFIER": "sandbox", "DEGREE_REGISTRY": "sandbox",
              "SMS_ADAPTER": "webhook"}
    with pytest.raises(ConfigurationRefused) as refused:
        assert_safe_for_environment("identity", config, environ={"CREDENCE_ENV": "production"})
    message = str(refused.value)
    assert "IDENTITY_VERIFIER=sandbox" in message and "DEGREE_REGISTRY=sandbox" in message
    assert "SMS_ADAPTER" not in message and "PAYMENT_PROVIDER" not in message and "JWT_SECRET" not in message
    with pytest.raises(ConfigurationRefused, match="IDENTITY_VERIFIER=sandbox"):
        assert_safe_for_environment("identity", config, environ={"CREDENCE_ENV": "staging"})
    staging = dict(config, IDENTITY_VERIFIER="reject")
    assert assert_safe_for_environment("identity", staging, environ={"CREDENCE_ENV": "staging"}) is None


def provider(cls, **config):
    instance = cls()
    instance.container = SimpleNamespace(config=config, dependencies=set())
    return instance


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_readable_dev_sms_adapter_runs_only_in_development(monkeypatch, env):
    monkeypatch.setenv("CREDENCE_ENV", env)
    with pytest.raises(ValueError, match="development"):
        provider(Sms, SMS_ADAPTER="dev").setup()


def test_the_dev_sms_adapter_runs_in_development(monkeypatch):
    monkeypatch.setenv("CREDENCE_ENV", "development")
    sms = provider(Sms, SMS_ADAPTER="dev")
    sms.setup()
    assert sms.adapter.readable is True


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_sandbox_identity_verifier_confirms_nobody_outside_development(monkeypatch, env):
    monkeypatch.setenv("CREDENCE_ENV", env)
    with pytest.raises(ValueError, match=f"refused in {env}"):
        provider(IdentityVerifier, IDENTITY_VERIFIER="sandbox").setup()
    with pytest.raises(ValueError, match=f"refused in {env}"):
        provider(IdentityVerifier).setup()  # the default is the sandbox
    assert provider(IdentityVerifier, IDENTITY_VERIFIER="reject").setup() is None


def test_the_degree_registry_sandbox_is_refused_in_production_but_allowed_in_staging(monkeypatch):
    monkeypatch.setenv("CREDENCE_ENV", "production")
    with pytest.raises(ValueError, match="refused in production"):
        provider(DegreeRegistry, DEGREE_REGISTRY="sandbox").setup()
    monkeypatch.setenv("CREDENCE_ENV", "staging")
    provider(DegreeRegistry, DEGREE_REGISTRY="sandbox").setup()


def test_the_sandbox_payment_provider_is_refused_in_production(monkeypatch):
    monkeypatch.setenv("CREDENCE_ENV", "production")
    with pytest.raises(ValueError, match="PAYMENT_PROVIDER=sandbox .*refused in production"):
        configured_payments({})


# --- the gateway's development-only routes ------------------------------------------------------------

def test_the_development_only_routes_are_the_sandbox_payer_and_the_dev_sms_inbox():
    from gateway.api import ROUTES

    assert {route.name for route in ROUTES if route.development_only} == {"sandbox_provider_payment",
                                                                          "dev_sms_messages"}


@pytest.mark.parametrize("env", ["staging", "production"])
def test_outside_development_the_gateway_neither_mounts_nor_documents_them(env):
    from gateway.api import ROUTES, mounted_routes
    from gateway.openapi import build_openapi

    mounted = mounted_routes(env)
    assert {route.name for route in ROUTES} - {route.name for route in mounted} == {"sandbox_provider_payment",
                                                                                      "dev_sms_messages"}
    paths = build_openapi(routes=mounted)["paths"]
    assert not [path for path in paths if "sandbox-provider" in path or "/dev/" in path]
    assert "/api/v1/payments/notifications/{provider}" in paths  # the real provider's callback stays


def test_in_development_the_gateway_mounts_and_documents_every_route():
    from gateway.api import ROUTES, mounted_routes
    from gateway.openapi import build_openapi

    assert mounted_routes("development") == ROUTES
    assert "/api/v1/sandbox-provider/orders/{order_number}/payment" in build_openapi(routes=ROUTES)["paths"]
