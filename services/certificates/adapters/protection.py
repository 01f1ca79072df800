"""Personal data at rest in certificates: the holder's name, the delivery address, the photo and identity-video
references, the values of correction requests, and the outbox's event envelopes (a certificate.issued event
carries the holder's name, and the outbox keeps published events for ``credence outbox republish``). The
answers kept for Idempotency-Key retries are encrypted with a key derived from the client's Idempotency-Key
(``credence_common/persistence/idempotency.py``), not with these keys.

Each such column has the type ``Sealed`` (``credence_common/persistence/sealed.py``): the code reads and writes
plaintext,
the database holds a token encrypted with ``CERTIFICATES_DATA_KEYS`` (active: ``CERTIFICATES_DATA_ACTIVE_KEY_ID``);
``credence certificates rotate-keys`` moves old values to the active key. Nothing in certificates looks a
certificate up by name or address (the public name check is verification's), so no blind index is kept. The
service installs these keys at start-up through ``dependencies.protection``.
"""

from __future__ import annotations

from pathlib import Path

from credence_common.persistence.sealed import DataKeys, sealed_type

CONFIG_FILE = Path(__file__).parents[1] / "config.yml"  # the service's config file
DATA_KEYS = DataKeys("certificates", CONFIG_FILE)
Sealed = sealed_type(DATA_KEYS)


def keyring_from_environment(environ=None):
    """The keys as the service's config file reads them here; migration 0007 encrypts existing rows with them."""
    return DATA_KEYS.from_environment(environ)
