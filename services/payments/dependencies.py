"""The payments service's nameko DependencyProviders: what its workers are given (config -> rules, adapters).

``Database`` (``credence_common/persistence/db.py``) gives each worker its unit of work, ``OutboxRelay`` publishes what
the use
cases wrote to the outbox and ``Metrics`` exposes its counters; the ones below are payments' own."""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from credence_common.bus.outbox_relay import OutboxRelay
from credence_common.persistence.sealed import Protection
from services.payments.adapters.configuration import configured_payments
from services.payments.adapters.protection import DATA_KEYS
from services.payments.models import OutboxEvent


class Payments(DependencyProvider):
    """The configured provider (``adapters/configuration.py``), its sandbox bank (development and staging only; only
    development pays at it) and the payment rules."""

    def setup(self):
        self.setup_ = configured_payments(self.container.config)
        self.provider, self.bank, self.rules = self.setup_.provider, self.setup_.bank, self.setup_.rules
        # the previous Beijing day is reconciled once its statement is out (WeChat Pay: after 10:00 next day)
        self.reconcile_after_hour = int(self.container.config.get("PAYMENT_RECONCILE_AFTER_HOUR", 10))

    def stop(self):
        self.setup_.close()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return self


def protection() -> Protection:
    """Installs the keys of the Sealed columns (``adapters/protection.py``) before the first worker runs."""
    return Protection(DATA_KEYS)


def outbox_relay() -> OutboxRelay:
    """Publishes the events the use cases wrote to payments' outbox, after their transaction commits."""
    return OutboxRelay(OutboxEvent)
