"""Personal data at rest in certificates: the holder's name, the delivery address, the photo and identity-video
references, the values of correction requests, and the outbox's event envelopes (a certificate.issued event
carries the holder's name, and the outbox keeps published events for ``credence outbox republish``).

Each such column has the type ``Sealed``: the code reads and writes plaintext, the database holds a
``credence_common.crypto`` token (AES-256-GCM, ``<key_id>$...``), as identity stores its data. The keys are
``CERTIFICATES_DATA_KEYS`` (``"k2=<new>,k1=<old>"``, every listed key decrypts) and
``CERTIFICATES_DATA_ACTIVE_KEY_ID`` (the one that encrypts); ``credence certificates rotate-keys`` moves old
values to the active key.

A sealed column cannot be searched or compared in SQL (each encryption has a fresh nonce): nothing in
certificates looks a certificate up by name or address, the public name check happens in verification.
"""

from __future__ import annotations

from pathlib import Path

from nameko.extensions import DependencyProvider
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from credence_common.config import assert_safe_for_environment, load_config
from credence_common.crypto import KeyRing

CONFIG_FILE = Path(__file__).with_name("config.yml")
KEYS_SETTING = "CERTIFICATES_DATA_KEYS"
ACTIVE_KEY_SETTING = "CERTIFICATES_DATA_ACTIVE_KEY_ID"


def keyring_from_config(config: dict) -> KeyRing:
    return KeyRing.from_spec(str(config[KEYS_SETTING]), str(config[ACTIVE_KEY_SETTING]))


def keyring_from_environment(environ=None) -> KeyRing:
    """The keys as the service's own config file reads them here (``CERTIFICATES_DATA_KEYS`` from the environment,
    the development key otherwise), refused outside development while they are the development key."""
    config = load_config(CONFIG_FILE)
    assert_safe_for_environment("certificates", {KEYS_SETTING: config[KEYS_SETTING]}, environ)
    return keyring_from_config(config)


class DataKeys:
    """The key ring the sealed columns use in this process. One certificates service runs per process; its
    ``Protection`` dependency installs the ring from the service's config when the container starts. Code that
    opens the database without the service (the command line, a migration, a test) gets the ring the config file
    gives in this environment, so it never writes with a key the service does not have."""

    def __init__(self):
        self._keyring: KeyRing | None = None

    def install(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    def reset(self) -> None:
        """Back to the config file's keys on next use (a test that installed others cleans up with this)."""
        self._keyring = None

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            self._keyring = keyring_from_environment()
        return self._keyring


DATA_KEYS = DataKeys()


class Sealed(TypeDecorator):
    """Text encrypted at rest with the certificates data keys; None stays NULL. Never compare it in SQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else DATA_KEYS.keyring.encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else DATA_KEYS.keyring.decrypt(value)


class Protection(DependencyProvider):
    """Installs the service's data keys at start-up, so a wrong or missing key stops the service at once
    instead of failing on the first certificate."""

    def setup(self):
        config = self.container.config
        if KEYS_SETTING in config:
            DATA_KEYS.install(keyring_from_config(config))
        else:  # a container started from a bare config dict (tests): the config file's keys for this environment
            DATA_KEYS.install(keyring_from_environment())

    def get_dependency(self, worker_ctx):
        return DATA_KEYS.keyring
