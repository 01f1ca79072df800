"""The verification service's nameko DependencyProviders: what its workers are given (config -> rules, adapters).

``Database`` (``credence_common/persistence/db.py``) gives each worker its unit of work, ``OutboxRelay`` publishes what
the use
cases wrote to the outbox, ``Settings`` reads the service's configuration and ``Metrics`` exposes its counters;
the ones below are verification's own."""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from credence_common.bus.outbox_relay import OutboxRelay
from credence_common.config import ConfigurationRefused
from credence_common.security import signing
from services.verification.domain import report_keys
from services.verification.models import OutboxEvent
from services.verification.usecases.reports import ReportSigner


class ReportKeys(DependencyProvider):
    """The key that signs verification reports, the previous keys that still verify (rotation:
    services/verification/domain/report_keys.py), and the public address their QR codes lead to."""

    def setup(self):
        config = self.container.config
        try:
            self.signer = ReportSigner(
                signing.load_private_key(str(config["VERIFICATION_REPORT_SIGNING_KEY"])),
                str(config.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")),
                report_keys.parse_time(config.get("VERIFICATION_REPORT_KEY_SINCE"), "VERIFICATION_REPORT_KEY_SINCE"),
                report_keys.previous_keys(config.get("VERIFICATION_REPORT_PREVIOUS_KEYS_JSON")))
        except ValueError as why:
            raise ConfigurationRefused(f"verification report keys: {why}") from None

    def get_dependency(self, worker_ctx):
        return self.signer


def outbox_relay() -> OutboxRelay:
    """Publishes the events the use cases wrote to verification's outbox (it publishes none today), after their
    transaction commits."""
    return OutboxRelay(OutboxEvent)
