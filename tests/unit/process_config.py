"""What a process's config file reads from the environment: shared by the checks of docker-compose.yml
(test_compose.py) and of the Kubernetes manifests (test_k8s.py), so both judge a deployment by one rule."""

from __future__ import annotations

import re
from pathlib import Path

from credence_common.config import SECRET_SUFFIXES
from deploy.processes import ProcessSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)")
SETTING_FROM_ENV = re.compile(r"^([A-Za-z0-9_]+)\s*:\s*(?:!raw_env_var\s+)?\$\{([A-Z0-9_]+)", re.MULTILINE)


def config_text(spec: ProcessSpec) -> str:
    return (REPO_ROOT / spec.config).read_text(encoding="utf-8")


def env_names_read(spec: ProcessSpec) -> set[str]:
    return set(ENV_REFERENCE.findall(config_text(spec)))


def secret_env_names(spec: ProcessSpec) -> set[str]:
    """Environment variables behind the config's secret settings (``*_SECRET``, ``*_PASSWORD``, ``*_KEY(S)``)."""
    return {env_name for setting, env_name in SETTING_FROM_ENV.findall(config_text(spec))
            if setting.upper().endswith(SECRET_SUFFIXES)}
