"""The certificates service's nameko DependencyProviders: what its workers are given (config -> rules, adapters).

``Database`` (``credence_common/persistence/db.py``) gives each worker its unit of work, ``OutboxRelay`` publishes what
the use
cases wrote to the outbox, ``Settings`` reads the service's configuration and ``Metrics`` exposes its counters;
the ones below are certificates' own."""

from __future__ import annotations

import logging
import os

from nameko.extensions import DependencyProvider

from credence_common import calendar
from credence_common.bus.outbox_relay import OutboxRelay
from credence_common.persistence.sealed import Protection
from services.certificates import domain
from services.certificates.adapters.protection import DATA_KEYS
from services.certificates.models import OutboxEvent
from services.certificates.usecases import CertificateRules

log = logging.getLogger(__name__)

# read until the release of 2026-12-07; the fees are payments' now (docs/operations.md, "The layout release")
OBSOLETE_SETTINGS = ("CERTIFICATE_FEE_FEN",)


class Rules(DependencyProvider):
    """The report's working-day delay, the shipping promise and the revocation rules, checked when the service
    starts rather than when a candidate pays. (No fee: the amounts are payments', asked per use: ``_fees``.)"""

    def setup(self):
        config = self.container.config
        for name in OBSOLETE_SETTINGS:
            if name in config or name in os.environ:
                log.warning("%s is no longer read: certificates show the fee of payments' schedule "
                            "(GET /api/v1/fees, changed by staff in payments)", name)
        self.rules = CertificateRules(
            report_delay_working_days=int(config.get("REPORT_DELAY_WORKING_DAYS", domain.REPORT_DELAY_WORKING_DAYS)),
            shipping_promise_working_days=int(config.get("SHIPPING_PROMISE_WORKING_DAYS",
                                                         domain.SHIPPING_PROMISE_WORKING_DAYS)),
            holidays=calendar.configured_holidays(config, "certificates"),
            revocation_review_days=int(config.get("REVOCATION_REVIEW_DAYS", domain.REVOCATION_REVIEW_DAYS)),
            on_result_correction=str(config.get("REVOKE_ON_RESULT_CORRECTION", "review")))
        if self.rules.on_result_correction not in domain.ON_RESULT_CORRECTION or \
                self.rules.revocation_review_days < 1:
            raise ValueError("REVOKE_ON_RESULT_CORRECTION is review or automatic, and REVOCATION_REVIEW_DAYS at "
                             "least 1")

    def get_dependency(self, worker_ctx):
        return self.rules


def protection() -> Protection:
    """Installs the keys of the Sealed columns (``adapters/protection.py``) before the first worker runs."""
    return Protection(DATA_KEYS)


def outbox_relay() -> OutboxRelay:
    """Publishes the events the use cases wrote to certificates' outbox, after their transaction commits."""
    return OutboxRelay(OutboxEvent)
