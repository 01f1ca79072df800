"""Security fixtures: the whole platform as ``make run`` starts it, on SQLite and again on PostgreSQL, with
the production limits (the e2e fixtures lift them) so that the attacks in docs/security.md meet what an
attacker would meet. One platform per backend serves the whole package; a test that needs other settings
starts its own with ``running_platform``."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import SECRETS, parametrize_platform, running_platform, variant_settings

# The limits as in production (gateway/config.yml, services/verification/config.yml); a test that must tell
# apart callers uses its own loopback source address (127.0.0.x) for each.
PRODUCTION_LIMITS = {"PUBLIC_RATE_LIMIT_PER_MINUTE": "600", "CHECKS_PER_NUMBER_PER_MINUTE": "20"}


def pytest_generate_tests(metafunc):
    # both backends; a module with ALSO_ON_THE_NAMEKO_GATEWAY = True also against the nameko gateway (on SQLite)
    parametrize_platform(metafunc, "secure_platform", "package")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/security/" in str(item.fspath):
            item.add_marker(pytest.mark.security)


@pytest.fixture(scope="package")
def secure_platform(request, tmp_path_factory):
    backend, settings = variant_settings(request.param)
    with running_platform(backend, tmp_path_factory.mktemp(f"secure-{request.param.replace('/', '-')}"),
                          **PRODUCTION_LIMITS, **settings) as instance:
        yield instance


@pytest.fixture(scope="package")
def journey(secure_platform):
    """One candidate's whole journey (deploy/journey.py): a signed-in candidate with an issued certificate."""
    from deploy.journey import run_journey

    return run_journey(secure_platform.gateway_url, say=lambda line: None,
                       staff_password=SECRETS["BOOTSTRAP_STAFF_PASSWORD"])


class SourceAddress(requests.adapters.HTTPAdapter):
    """Sends from another loopback address (127.0.0.0/8 is all local on Linux): one caller per address."""

    def __init__(self, address: str):
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str) -> requests.Session:
    session = requests.Session()
    adapter = SourceAddress(address)
    session.mount("http://", adapter)
    return session


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return body["error"]["code"]
