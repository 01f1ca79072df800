from __future__ import annotations

import re
from pathlib import Path

import pytest

from credence_common.config import (
    ADAPTER_SECRETS,
    ConfigurationRefused,
    adapter_reads,
    assert_safe_for_environment,
    insecure_settings,
    is_production,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted(ROOT.glob("services/*/config.yml")) + [ROOT / "gateway" / "config.yml"]
ENV_REFERENCE = re.compile(r"^(\w+):\s*(?:!raw_env_var\s+)?\$\{(\w+)(?::[^}]*)?\}", re.MULTILINE)
PRODUCTION = {"CREDENCE_ENV": "production"}


def service_name(path: Path) -> str:
    return path.parent.name


def env_references(path: Path) -> dict[str, str]:
    """Setting name -> environment variable that overrides it."""
    return dict(ENV_REFERENCE.findall(path.read_text(encoding="utf-8")))


def is_secret(key: str) -> bool:
    return key.upper().endswith(("_SECRET", "_PASSWORD", "_KEY", "_KEYS"))


@pytest.fixture
def clean_env(monkeypatch):
    """No environment override for any variable the real config files refer to."""
    for path in CONFIG_FILES:
        for variable in env_references(path).values():
            monkeypatch.delenv(variable, raising=False)
    return monkeypatch


# --- insecure_settings ------------------------------------------------------------------------------

def test_insecure_settings_finds_default_and_empty_secrets():
    config = {
        "JWT_SECRET": "dev-insecure-jwt-secret",
        "DB_PASSWORD": "",
        "API_KEY": None,
        "SIGNING_KEY": "dev-insecure-",
        "lower_case_secret": "dev-insecure-x",
        "STRONG_SECRET": "k3y-from-vault-8f2c1a",
        "STRONG_PASSWORD": "correct horse battery staple",
        "LOG_LEVEL": "dev-insecure-not-a-secret-name",
        "DB_URI": "",
        "KEYRING": "",
    }
    assert insecure_settings(config) == ["API_KEY", "DB_PASSWORD", "JWT_SECRET", "SIGNING_KEY", "lower_case_secret"]


def test_insecure_settings_of_a_safe_config_is_empty():
    assert insecure_settings({"JWT_SECRET": "x9", "AMQP_URI": "pyamqp://", "max_workers": 10}) == []
    assert insecure_settings({}) == []


def test_a_development_marker_anywhere_in_the_value_counts():
    # key specs such as "k1=dev-insecure-..." hold the marker after the key id
    assert insecure_settings({"IDENTITY_DATA_KEYS": "k1=dev-insecure-identity-data-key"}) == ["IDENTITY_DATA_KEYS"]
    assert insecure_settings({"IDENTITY_DATA_KEYS": "k1=9f2c4e-real-material"}) == []


def test_a_secret_only_another_adapter_reads_is_not_required():
    """credence_common.config.ADAPTER_SECRETS: the sandbox's signing key is needed only with the sandbox provider,
    the webhook's secret only with the webhook adapter; the chosen adapter's secret still is."""
    sandbox_key = {"PAYMENT_SANDBOX_SIGNING_KEY": "dev-insecure-payment-sandbox-signing-key"}
    assert insecure_settings({**sandbox_key, "PAYMENT_PROVIDER": "wechatpay"}) == []
    assert insecure_settings({**sandbox_key, "PAYMENT_PROVIDER": "sandbox"}) == ["PAYMENT_SANDBOX_SIGNING_KEY"]
    assert insecure_settings(sandbox_key) == ["PAYMENT_SANDBOX_SIGNING_KEY"], "no PAYMENT_PROVIDER: the sandbox"
    webhook = {"SMS_WEBHOOK_SECRET": "", "BOOTSTRAP_STAFF_PASSWORD": "dev-insecure-staff-password"}
    assert insecure_settings({**webhook, "SMS_ADAPTER": "webhook"}) == ["BOOTSTRAP_STAFF_PASSWORD",
                                                                        "SMS_WEBHOOK_SECRET"]
    assert insecure_settings({**webhook, "SMS_ADAPTER": " Dev "}) == ["BOOTSTRAP_STAFF_PASSWORD"]


# --- assert_safe_for_environment --------------------------------------------------------------------

@pytest.mark.parametrize("env_value", ["production", "PRODUCTION", " Production "])
def test_production_refuses_insecure_settings_and_names_them(env_value):
    config = {"JWT_SECRET": "dev-insecure-jwt-secret", "DB_PASSWORD": "", "AMQP_URI": "pyamqp://gateway:pw@rabbit//"}
    with pytest.raises(ConfigurationRefused) as info:
        assert_safe_for_environment("gateway", config, environ={"CREDENCE_ENV": env_value})
    message = str(info.value)
    assert message.startswith("gateway:")
    assert "JWT_SECRET" in message and "DB_PASSWORD" in message
    assert "AMQP_URI" not in message
    assert "dev-insecure-jwt-secret" not in message  # the value itself is never printed


def test_configuration_refused_stops_the_process():
    assert issubclass(ConfigurationRefused, SystemExit)


@pytest.mark.parametrize("environ", [{"CREDENCE_ENV": "development"}, {"CREDENCE_ENV": " Development "}])
def test_in_development_insecure_defaults_are_allowed(environ):
    assert is_production(environ) is False
    assert assert_safe_for_environment("gateway", {"JWT_SECRET": "dev-insecure-jwt-secret"}, environ=environ) is None


def test_production_with_real_secrets_is_allowed():
    config = {"JWT_SECRET": "9b1f-real-secret", "BOOTSTRAP_STAFF_PASSWORD": "from-the-vault"}
    assert is_production(PRODUCTION) is True
    assert assert_safe_for_environment("identity", config, environ=PRODUCTION) is None


# --- load_config ------------------------------------------------------------------------------------

def test_load_config_substitutes_environment_with_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDENCE_UNIT_VALUE", "from-env")
    monkeypatch.setenv("CREDENCE_UNIT_HOST", "rabbit.internal")
    monkeypatch.setenv("CREDENCE_UNIT_PORT", "5673")
    for name in ("CREDENCE_UNIT_UNSET", "CREDENCE_UNIT_UNSET_NUMBER", "CREDENCE_UNIT_UNSET_EMPTY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config.yml"
    path.write_text(
        "PLAIN: hello\n"
        "FROM_ENV: ${CREDENCE_UNIT_VALUE:fallback}\n"
        "DEFAULTED: ${CREDENCE_UNIT_UNSET:fallback-value}\n"
        "NUMBER: ${CREDENCE_UNIT_UNSET_NUMBER:42}\n"
        "PORT: ${CREDENCE_UNIT_PORT:5672}\n"
        "EMPTY: ${CREDENCE_UNIT_UNSET_EMPTY:}\n"
        "EMBEDDED: pyamqp://${CREDENCE_UNIT_HOST:localhost}:5672/\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config["PLAIN"] == "hello"
    assert config["FROM_ENV"] == "from-env"
    assert config["DEFAULTED"] == "fallback-value"
    assert config["NUMBER"] == 42
    assert config["PORT"] == 5673
    assert config["EMPTY"] is None
    assert config["EMBEDDED"] == "pyamqp://rabbit.internal:5672/"


def test_load_config_of_an_empty_file_is_an_empty_dict(tmp_path):
    path = tmp_path / "empty.yml"
    path.write_text("# nothing\n", encoding="utf-8")
    assert load_config(path) == {}


def test_an_empty_default_secret_is_refused_in_production(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENCE_UNIT_SECRET", raising=False)
    path = tmp_path / "config.yml"
    path.write_text("MY_SECRET: ${CREDENCE_UNIT_SECRET:}\n", encoding="utf-8")
    config = load_config(path)
    assert insecure_settings(config) == ["MY_SECRET"]
    with pytest.raises(ConfigurationRefused, match="MY_SECRET"):
        assert_safe_for_environment("unit", config, environ=PRODUCTION)


# --- the real config files --------------------------------------------------------------------------

def test_every_service_has_a_config_file():
    names = {service_name(p) for p in CONFIG_FILES}
    assert {"identity", "scoring", "certificates", "payments", "verification", "gateway"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=service_name)
def test_real_config_loads_with_an_amqp_uri(path, clean_env):
    config = load_config(path)
    assert isinstance(config, dict) and config
    assert isinstance(config.get("AMQP_URI"), str)
    assert config["AMQP_URI"].startswith(("pyamqp://", "amqp://", "amqps://"))
    assert not any("${" in str(value) for value in config.values()), "every placeholder is substituted"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=service_name)
def test_real_config_secrets_all_have_insecure_defaults(path, clean_env):
    """A secret default that does not look like one would slip through the production check."""
    config = load_config(path)
    secrets = sorted(key for key in config if is_secret(key) and adapter_reads(config, key))
    assert insecure_settings(config) == secrets
    for key in config:  # a secret of an adapter not configured by default: checked as if it were configured
        if is_secret(key) and key in ADAPTER_SECRETS:
            setting, values = ADAPTER_SECRETS[key]
            assert insecure_settings({**config, setting: values[0]}) == sorted({*secrets, key}), key


def test_every_adapter_secret_is_a_secret_setting_of_a_known_adapter():
    from credence_common.config import ADAPTER_DEFAULTS
    for key, (setting, values) in ADAPTER_SECRETS.items():
        assert is_secret(key) and setting in ADAPTER_DEFAULTS and values, key


@pytest.mark.parametrize("path", CONFIG_FILES, ids=service_name)
def test_production_without_overrides_refuses_every_service_holding_secrets(path, clean_env):
    config = load_config(path)
    secrets = [key for key in config if is_secret(key) and adapter_reads(config, key)]
    if not secrets:
        assert assert_safe_for_environment(service_name(path), config, environ=PRODUCTION) is None
        return
    with pytest.raises(ConfigurationRefused) as info:
        assert_safe_for_environment(service_name(path), config, environ=PRODUCTION)
    for key in secrets:
        assert key in str(info.value)


# The only adapter of its kind is still a sandbox, which production refuses (credence_common.config
# ADAPTER_ENVIRONMENTS): these services cannot start in production until a real one exists.
ONLY_A_SANDBOX = {"identity": "DEGREE_REGISTRY=sandbox", "payments": "PAYMENT_PROVIDER=sandbox"}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=service_name)
def test_production_with_secrets_from_the_environment_is_allowed(path, clean_env):
    for key, variable in env_references(path).items():
        if is_secret(key):
            clean_env.setenv(variable, f"vault-{variable.lower()}-Zq8")
    clean_env.setenv("SMS_ADAPTER", "webhook")
    clean_env.setenv("IDENTITY_VERIFIER", "reject")
    clean_env.setenv("AMQP_URI", f"pyamqp://{service_name(path)}:vault-Zq8@rabbitmq:5672/")
    config = load_config(path)
    if service_name(path) not in ONLY_A_SANDBOX:
        assert assert_safe_for_environment(service_name(path), config, environ=PRODUCTION) is None
        return
    with pytest.raises(ConfigurationRefused) as refused:
        assert_safe_for_environment(service_name(path), config, environ=PRODUCTION)
    assert ONLY_A_SANDBOX[service_name(path)] in str(refused.value)
    assert "development default" not in str(refused.value)


def test_the_services_known_to_hold_secrets_are_refused_in_production(clean_env):
    refused = set()
    for path in CONFIG_FILES:
        try:
            assert_safe_for_environment(service_name(path), load_config(path), environ=PRODUCTION)
        except ConfigurationRefused:
            refused.add(service_name(path))
    assert {"identity", "payments", "gateway"} <= refused


def test_secrets_stay_strings_whatever_they_look_like(clean_env):
    clean_env.setenv("PAYMENT_SANDBOX_SIGNING_KEY", "00112233")
    clean_env.setenv("JWT_SECRET", "yes")
    payments = load_config(next(p for p in CONFIG_FILES if "payments" in str(p)))
    gateway = load_config(next(p for p in CONFIG_FILES if "gateway" in str(p)))
    assert payments["PAYMENT_SANDBOX_SIGNING_KEY"] == "00112233"
    assert gateway["JWT_SECRET"] == "yes"


def test_a_whitespace_secret_counts_as_empty():
    assert insecure_settings({"JWT_SECRET": "   "}) == ["JWT_SECRET"]


def test_readiness_names_what_does_not_answer():
    import json

    from credence_common.observability.metrics import check_broker, check_database, probe_app

    assert check_database("postgresql://postgres@127.0.0.1:1/nothing").startswith("unreachable")
    assert check_broker("pyamqp://guest:guest@127.0.0.1:1/").startswith("unreachable")
    statuses = []
    app = probe_app(lambda: {"database": "ok", "broker": "unreachable: OSError"})
    body = b"".join(app({"PATH_INFO": "/ready"}, lambda status, headers: statuses.append(status)))
    assert statuses == ["503 Service Unavailable"] and json.loads(body)["broker"] == "unreachable: OSError"
    body = b"".join(app({"PATH_INFO": "/health"}, lambda status, headers: statuses.append(status)))
    assert statuses[-1] == "200 OK" and json.loads(body) == {"status": "ok"}


# --- the broker user -----------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["pyamqp://guest:guest@127.0.0.1:5672/", "amqp://guest:other@rabbit/", "pyamqp://",
                                 "pyamqp://rabbit:5672/", "amqp://gu%65st:x@rabbit/"])
@pytest.mark.parametrize("env_value", ["staging", "production"])
def test_staging_and_production_refuse_the_guest_broker_user(uri, env_value):
    with pytest.raises(ConfigurationRefused, match="guest") as info:
        assert_safe_for_environment("scoring", {"AMQP_URI": uri}, environ={"CREDENCE_ENV": env_value})
    assert "AMQP_URI" in str(info.value) and "x@" not in str(info.value)  # the URI (and password) is not echoed


def test_a_service_with_its_own_broker_user_starts_and_development_keeps_guest():
    assert assert_safe_for_environment("scoring", {"AMQP_URI": "pyamqp://scoring:s3cret@rabbit:5672/"},
                                       environ=PRODUCTION) is None
    assert assert_safe_for_environment("scoring", {"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/"},
                                       environ={"CREDENCE_ENV": "development"}) is None
