"""The process runner refuses production start-up on development secrets, before touching the broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    ("gateway/config.yml", "gateway.service:GatewayService", "JWT_SECRET"),
    ("services/payments/config.yml", "services.payments.service:PaymentsService", "PAYMENT_SANDBOX_SIGNING_KEY"),
    ("services/identity/config.yml", "services.identity.service:IdentityService", "BOOTSTRAP_STAFF_PASSWORD"),
]


def run_runner(config: str, service: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("JWT_SECRET", "PAYMENT_SANDBOX_SIGNING_KEY", "BOOTSTRAP_STAFF_PASSWORD")}
    environment.update(env)
    # An unreachable broker: if the guard did not refuse, start-up would fail differently (and slowly).
    environment["AMQP_URI"] = "pyamqp://guest:guest@127.0.0.1:1/"
    return subprocess.run([sys.executable, "-m", "credence_common.runtime.runner", config, service], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("config", "service", "secret"), CASES)
def test_production_refuses_development_secrets_and_names_them(config, service, secret):
    result = run_runner(config, service, CREDENCE_ENV="production")
    assert result.returncode == 3
    assert secret in result.stderr and "CREDENCE_ENV=production" in result.stderr
    assert "Traceback" not in result.stderr

