"""Service configuration: one nameko YAML file per service with ``${ENV:default}`` substitution.

Development defaults are allowed so that ``make run`` works on a fresh machine. Every default secret
starts with ``dev-insecure-``; with ``CREDENCE_ENV=production`` a service refuses to start while any
``*_SECRET``, ``*_PASSWORD``, ``*_KEY`` or ``*_KEYS`` setting is empty or still holds such a value, and
names the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

INSECURE_DEFAULT_PREFIX = "dev-insecure-"
SECRET_SUFFIXES = ("_SECRET", "_PASSWORD", "_KEY", "_KEYS")


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
    """development: dev secrets, readable dev SMS, sandboxes. staging: real secrets, sandboxes allowed
    (no real identity-verification or degree-registry adapter yet), no dev SMS. production: real secrets,
    no sandbox and no dev SMS. Unset means development, so ``make run`` works on a fresh machine."""
    environ = os.environ if environ is None else environ
    value = environ.get("CREDENCE_ENV", "").strip().lower() or "development"
    return value if value in ENVIRONMENTS else "production"  # an unknown name gets the strictest rules


def is_production(environ=None) -> bool:
    return environment(environ) == "production"


def is_development(environ=None) -> bool:
    return environment(environ) == "development"


def insecure_settings(config: dict) -> list[str]:
    """Names of secret settings that still hold a development default."""
    return sorted(
        key
        for key, value in config.items()
        if key.upper().endswith(SECRET_SUFFIXES)
        and (value is None or str(value).strip() == "" or INSECURE_DEFAULT_PREFIX in str(value))
    )


def uses_guest_broker_user(config: dict) -> bool:
    """RabbitMQ's built-in ``guest`` may do anything on the broker: a service connecting as guest could consume
    any queue and publish as the gateway. Outside development each process has its own broker user."""
    uri = str(config.get("AMQP_URI") or "")
    try:
        username = urlsplit(uri).username
    except ValueError:
        return False
    return unquote(username or "guest") == "guest"  # no user in the URI: the client library logs in as guest


def assert_safe_for_environment(service_name: str, config: dict, environ=None) -> None:
    if is_development(environ):
        return
    problems = insecure_settings(config)
    if problems:
        raise ConfigurationRefused(
            f"{service_name}: refusing to start with CREDENCE_ENV={environment(environ)} because these settings "
            f"still hold a development default or are empty: {', '.join(problems)}. "
            "Set them in the environment."
        )
    if "AMQP_URI" in config and uses_guest_broker_user(config):
        raise ConfigurationRefused(
            f"{service_name}: refusing to start with CREDENCE_ENV={environment(environ)} because AMQP_URI logs in "
            "as RabbitMQ's guest user. Give the service its own broker user (docs/operations.md)."
        )


def ensure_sqlite_directory(db_uri: str, base: Path | None = None) -> None:
    """``sqlite:///var/x.sqlite`` lives in a folder that may not exist yet on a fresh checkout."""
    prefix = "sqlite:///"
    if db_uri.startswith(prefix) and not db_uri.startswith(prefix + ":memory:"):
        path = Path(db_uri[len(prefix):])
        if not path.is_absolute() and base is not None:
            path = base / path
        path.parent.mkdir(parents=True, exist_ok=True)
