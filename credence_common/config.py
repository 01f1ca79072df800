"""Service configuration: one nameko YAML file per service with ``${ENV:default}`` substitution.

Development defaults are allowed so that ``make run`` works on a fresh machine. Every default secret
starts with ``dev-insecure-``. Every process must be told where it runs (``CREDENCE_ENV``): without it, or
with a name it does not know, it refuses to start. Outside development a service refuses to start while any
``*_SECRET``, ``*_PASSWORD``, ``*_KEY`` or ``*_KEYS`` setting is empty or still holds such a value, or while
it is configured with a sandbox or development adapter that its environment does not allow
(``ADAPTER_ENVIRONMENTS``), and names the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

# what a secret setting and a development default look like (secret_names.py: also read by actor_tokens.py)
from credence_common.broker_addresses import broker_uris
from credence_common.security.secret_names import INSECURE_DEFAULT_PREFIX, SECRET_SUFFIXES


class ConfigurationRefused(SystemExit):
    """Raised at start-up when the configuration is unsafe for the current environment."""


def load_config(path: str | os.PathLike) -> dict:
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    return config


ENVIRONMENTS = ("development", "staging", "production")


def environment(environ=None) -> str:
    """development: dev secrets, readable dev SMS, sandboxes, the sandbox routes. staging: real secrets, the
    degree-registry and payment-provider sandboxes allowed (no real adapter exists yet) but nothing that
    confirms an identity or pays for free, no dev SMS. production: real secrets, no sandbox and no dev SMS.

    There is no default: unset, empty or an unknown name raises ``ConfigurationRefused``. A missing setting
    used to mean development, so a forgotten variable on a server opened the sandboxes; development must now be
    asked for (``make run``, the tests and the development compose file say it). Case and surrounding spaces
    do not matter."""
    environ = os.environ if environ is None else environ
    given = environ.get("CREDENCE_ENV")
    value = (given or "").strip().lower()
    if value not in ENVIRONMENTS:
        told = "is not set" if given is None else f"is {given!r}, which is not an environment"
        raise ConfigurationRefused(
            f"CREDENCE_ENV {told}: set it to development, staging or production. Refusing to guess, because "
            "development allows development secrets, readable text messages and the sandboxes.")
    return value


def is_production(environ=None) -> bool:
    return environment(environ) == "production"


def is_development(environ=None) -> bool:
    return environment(environ) == "development"


def insecure_settings(config: dict) -> list[str]:
    """Names of secret settings that still hold a development default. A secret that only one adapter reads
    (``ADAPTER_SECRETS``) counts only while that adapter is configured: production with WeChat Pay needs no
    sandbox signing key, and staging with the webhook SMS adapter no Tencent Cloud key."""
    return sorted(
        key
        for key, value in config.items()
        if key.upper().endswith(SECRET_SUFFIXES) and adapter_reads(config, key)
        and (value is None or str(value).strip() == "" or INSECURE_DEFAULT_PREFIX in str(value))
    )


# Secret settings read by one adapter only: setting name -> (the adapter setting, the values that read it).
# Each adapter module adds its own secrets here, beside its entry in ADAPTER_ENVIRONMENTS when it has one.
ADAPTER_SECRETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PAYMENT_SANDBOX_SIGNING_KEY": ("PAYMENT_PROVIDER", ("sandbox",)),
    "SMS_WEBHOOK_SECRET": ("SMS_ADAPTER", ("webhook",)),
}


def configured_adapter(config: dict, setting: str) -> str:
    """The adapter ``config`` chooses for ``setting`` (its default, a sandbox, when the file does not say)."""
    return str(config.get(setting) or ADAPTER_DEFAULTS[setting]).strip().lower()


def adapter_reads(config: dict, key: str) -> bool:
    """Whether the configured adapters read the secret ``key`` (any secret not owned by one adapter: yes)."""
    owner = ADAPTER_SECRETS.get(key)
    return owner is None or configured_adapter(config, owner[0]) in owner[1]


# The sandbox and development adapters, by setting and value (the value each service uses when the setting is
# absent is the sandbox one): the environments that may run each, and why the others may not. Staging keeps
# the degree-registry and payment sandboxes for platforms not yet connected to the real ones; its payments cannot
# be made for free because the route and RPC that pay at the sandbox exist only in development.
ADAPTER_ENVIRONMENTS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("IDENTITY_VERIFIER", "sandbox"): (("development",), "approves any evidence, so anyone could confirm an "
                                       "identity for free (use IDENTITY_VERIFIER=tencent_faceid, or reject and "
                                       "confirm on site)"),
    ("DEGREE_REGISTRY", "sandbox"): (("development", "staging"), "accepts made-up degrees (set DEGREE_REGISTRY=http, "
                                     "the authority's registry: docs/degree-registry-contract.md)"),
    ("PAYMENT_PROVIDER", "sandbox"): (("development", "staging"), "is not a real payment provider"),
    ("SMS_ADAPTER", "dev"): (("development",), "keeps codes readable by anyone (set SMS_ADAPTER=webhook or "
                             "tencent_sms)"),
}
# The real adapters (IDENTITY_VERIFIER=tencent_faceid and reject, DEGREE_REGISTRY=http, PAYMENT_PROVIDER=wechatpay,
# SMS_ADAPTER=webhook and tencent_sms) have no rule: a real adapter may run anywhere, production included.
ADAPTER_DEFAULTS = {"IDENTITY_VERIFIER": "sandbox", "DEGREE_REGISTRY": "sandbox", "PAYMENT_PROVIDER": "sandbox",
                    "SMS_ADAPTER": "dev"}


def adapter_refusal(setting: str, value, environ=None) -> str | None:
    """Why ``setting=value`` may not run in this environment, or None when it may (a real adapter always may)."""
    value = ADAPTER_DEFAULTS.get(setting) if value is None else value
    rule = ADAPTER_ENVIRONMENTS.get((setting, str(value).strip().lower()))
    current = environment(environ)
    if rule is None or current in rule[0]:
        return None
    allowed, why = rule
    return f"{setting}={value} {why}; it is refused in {current} (allowed only in {' and '.join(allowed)})"


def adapter_refusals(config: dict, environ=None) -> list[str]:
    """The refusals of the adapters a config file names (a setting it does not name is not checked here: that
    service does not have the adapter)."""
    return [refusal for setting in ADAPTER_DEFAULTS if setting in config
            for refusal in [adapter_refusal(setting, config[setting], environ)] if refusal]


def uses_guest_broker_user(config: dict) -> bool:
    """RabbitMQ's built-in ``guest`` may do anything on the broker: a service connecting as guest could consume
    any queue and publish as the gateway. Outside development each process has its own broker user."""
    for uri in broker_uris(str(config.get("AMQP_URI") or "")) or [""]:  # every node of a cluster
        try:
            username = urlsplit(uri).username
        except ValueError:
            continue
        if unquote(username or "guest") == "guest":  # no user in the URI: the client library logs in as guest
            return True
    return False


RPC_TIMEOUT_MAX_SECONDS = 3600.0  # far above any sensible deadline, far below what a message expiration can hold


def setting_refusals(config: dict) -> list[str]:
    """Settings whose value no environment can run with. RPC_TIMEOUT_SECONDS is every call's deadline and the
    gateway's calls' message expiration (gateway/amqp_rpc.py): the broker closes the channel of a publish whose
    expiration is negative or too large, which would fail every call after it."""
    problems = []
    if "RPC_TIMEOUT_SECONDS" in config:
        try:
            seconds = float(config["RPC_TIMEOUT_SECONDS"])
        except (TypeError, ValueError):
            seconds = float("nan")
        if not 0 < seconds <= RPC_TIMEOUT_MAX_SECONDS:  # NaN fails both comparisons
            problems.append(f"RPC_TIMEOUT_SECONDS must be a number of seconds above 0 and at most "
                            f"{RPC_TIMEOUT_MAX_SECONDS:.0f}, not {config['RPC_TIMEOUT_SECONDS']!r}")
    return problems


def assert_safe_for_environment(service_name: str, config: dict, environ=None) -> None:
    """The check every process runs at start-up (credence_common/runtime/runner.py), before it touches the broker."""
    try:
        current = environment(environ)
    except ConfigurationRefused as refusal:
        raise ConfigurationRefused(f"{service_name}: refusing to start: {refusal}") from None
    unusable = setting_refusals(config)
    if unusable:
        raise ConfigurationRefused(f"{service_name}: refusing to start: " + "; and ".join(unusable) + ".")
    if current == "development":
        return
    problems = []
    insecure = insecure_settings(config)
    if insecure:
        problems.append("these settings still hold a development default or are empty: "
                        f"{', '.join(insecure)}. Set them in the environment")
    problems.extend(adapter_refusals(config, environ))
    if "AMQP_URI" in config and uses_guest_broker_user(config):
        problems.append("AMQP_URI logs in as RabbitMQ's guest user: give the service its own broker user "
                        "(docs/operations.md)")
    if problems:
        raise ConfigurationRefused(f"{service_name}: refusing to start with CREDENCE_ENV={current} because "
                                   + "; and ".join(problems) + ".")


def ensure_sqlite_directory(db_uri: str, base: Path | None = None) -> None:
    """``sqlite:///var/x.sqlite`` lives in a folder that may not exist yet on a fresh checkout."""
    prefix = "sqlite:///"
    if db_uri.startswith(prefix) and not db_uri.startswith(prefix + ":memory:"):
        path = Path(db_uri[len(prefix):])
        if not path.is_absolute() and base is not None:
            path = base / path
        path.parent.mkdir(parents=True, exist_ok=True)
