"""The scoring service's nameko DependencyProviders: what its workers are given (config -> adapters, sessions).

``Database`` (``credence_common/persistence/db.py``) gives each worker its unit of work, ``OutboxRelay`` publishes what
the use
cases wrote to the outbox, ``Settings`` reads the service's configuration and ``Metrics`` exposes its counters;
the ones below are scoring's own."""

from __future__ import annotations

from credence_common.bus.outbox_relay import OutboxRelay
from credence_common.persistence.sealed import Protection
from services.scoring.adapters.protection import DATA_KEYS
from services.scoring.models import OutboxEvent


def protection() -> Protection:
    """Installs the keys of the Sealed columns (``adapters/protection.py``) before the first worker runs."""
    return Protection(DATA_KEYS)


def outbox_relay() -> OutboxRelay:
    """Publishes the events the use cases wrote to scoring's outbox, after their transaction commits."""
    return OutboxRelay(OutboxEvent)
