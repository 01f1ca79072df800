"""Which adapters and defaults each CREDENCE_ENV allows."""

from types import SimpleNamespace

import pytest

from credence_common.config import ConfigurationRefused, assert_safe_for_environment, environment
from services.identity.prior_education import DegreeRegistry
from services.identity.sms import Sms
from services.identity.verifier import IdentityVerifier


@pytest.mark.parametrize("value, expected", [(None, "development"), ("staging", "staging"),
                                             (" Production ", "production"), ("prod", "production")])
def test_unknown_environment_names_get_the_strictest_rules(value, expected):
    environ = {} if value is None else {"CREDENCE_ENV": value}
    assert environment(environ) == expected


def test_staging_also_refuses_development_secrets():
    with pytest.raises(ConfigurationRefused) as refused:
        assert_safe_for_environment("gateway", {"JWT_SECRET": "dev-insecure-jwt-secret"},
                                    environ={"CREDENCE_ENV": "staging"})
    assert "JWT_SECRET" in str(refused.value) and "staging" in str(refused.value)


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
    monkeypatch.delenv("CREDENCE_ENV", raising=False)
    sms = provider(Sms, SMS_ADAPTER="dev")
    sms.setup()
    assert sms.adapter.readable is True


@pytest.mark.parametrize("cls, key", [(IdentityVerifier, "IDENTITY_VERIFIER"), (DegreeRegistry, "DEGREE_REGISTRY")])
def test_sandboxes_are_refused_in_production_but_allowed_in_staging(monkeypatch, cls, key):
    monkeypatch.setenv("CREDENCE_ENV", "production")
    with pytest.raises(ValueError, match="production"):
        provider(cls, **{key: "sandbox"}).setup()
    monkeypatch.setenv("CREDENCE_ENV", "staging")
    provider(cls, **{key: "sandbox"}).setup()
