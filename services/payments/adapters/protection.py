"""Personal data at rest in payments: the invoice details of an order (a personal invoice's title is the
payer's name), sealed with ``PAYMENTS_DATA_KEYS`` (active: ``PAYMENTS_DATA_ACTIVE_KEY_ID``) as
``credence_common/persistence/sealed.py`` describes; ``credence payments rotate-keys`` moves old values to the active
key.
Nothing looks an order up by its invoice details, so no blind index is kept. Payments' events carry no names:
its outbox stays as it is. The answers kept for Idempotency-Key retries (an order's answer holds the invoice
details) are encrypted with a key derived from the client's Idempotency-Key
(``credence_common/persistence/idempotency.py``).
The service installs these keys at start-up through ``dependencies.protection``.
"""

from __future__ import annotations

from pathlib import Path

from credence_common.persistence.sealed import DataKeys, sealed_type

CONFIG_FILE = Path(__file__).parents[1] / "config.yml"  # the service's config file
DATA_KEYS = DataKeys("payments", CONFIG_FILE)
Sealed = sealed_type(DATA_KEYS)
