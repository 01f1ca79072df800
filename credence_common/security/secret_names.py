"""What marks a setting as a secret, and a secret as a development default. Shared by the configuration guard
(config.py) and the actor-signing keys (actor_tokens.py), with nothing else in it: the rules that reach
actor_tokens (a service's domain checks who may act) load no configuration machinery, nameko's YAML parser
included."""

from __future__ import annotations

INSECURE_DEFAULT_PREFIX = "dev-insecure-"
SECRET_SUFFIXES = ("_SECRET", "_PASSWORD", "_KEY", "_KEYS")
