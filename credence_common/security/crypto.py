"""Encryption at rest of personal data (resident ID numbers, mobiles, emails) and keyed blind indexes.

A stored value is a token ``<key_id>$<base64url(nonce || AES-256-GCM ciphertext)>``. The key id travels with
the token so keys can be rotated: new values use the active key, old tokens still decrypt with the key they
name until ``reencrypt`` moves them. Encrypted columns cannot be searched, so each searchable value also gets a
blind index: an HMAC of the normalised value that the database can compare for equality without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FIELD_ENCRYPTION_INFO = b"credence-field-encryption/v1"
BLIND_INDEX_INFO = b"credence-blind-index/v1"

KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,16}")
TOKEN_SEPARATOR = "$"
NONCE_BYTES = 12
TAG_BYTES = 16
_BASE64URL_PATTERN = re.compile(r"[A-Za-z0-9_-]*")


class DecryptionError(Exception):
    """The token cannot be turned back into its plaintext: unknown key, malformed or tampered with."""


def derive_key(material: str, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 without salt: the material is a high-entropy secret from the configuration, and the info
    string keeps keys for different uses apart even when an operator reuses one secret for both."""
    if not isinstance(material, str) or not material:
        raise ValueError("key material must be a non-empty string")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material.encode("utf-8"))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # The stdlib decoder silently skips characters outside the alphabet and ignores the unused low bits of
    # the last character, so several strings decode to the same bytes; only the canonical spelling counts.
    if not _BASE64URL_PATTERN.fullmatch(text) or len(text) % 4 == 1:
        raise DecryptionError("malformed token")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("malformed token") from None
    if _b64encode(data) != text:
        raise DecryptionError("malformed token")
    return data


class KeyRing:
    """The field-encryption keys of one deployment: every known key decrypts, only the active key encrypts."""

    def __init__(self, keys: dict[str, str], active_key_id: str):
        if not keys:
            raise ValueError("a key ring needs at least one key")
        ciphers: dict[str, AESGCM] = {}
        for key_id, material in keys.items():
            if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
                raise ValueError(f"invalid key id {key_id!r}: use 1 to 16 of A-Z, a-z, 0-9, '_' and '-'")
            if not isinstance(material, str) or not material:
                raise ValueError(f"key {key_id!r} has empty key material")
            ciphers[key_id] = AESGCM(derive_key(material, FIELD_ENCRYPTION_INFO))
        if active_key_id not in ciphers:
            raise ValueError(f"active key id {active_key_id!r} is not among the keys {sorted(ciphers)}")
        self._ciphers = ciphers
        self._active_key_id = active_key_id

    @classmethod
    def from_spec(cls, spec: str, active_key_id: str) -> KeyRing:
        """Parse ``"k2=material,k1=oldmaterial"``, the form one environment variable can carry.

        Material is taken verbatim after the first '=' (it may itself contain '=' or spaces). Error messages
        name the entry's position and key id but never echo material, because they end up in logs.
        """
        if not isinstance(spec, str) or not spec:
            raise ValueError("the key spec is empty: expected 'key_id=material[,key_id=material...]'")
        keys: dict[str, str] = {}
        for position, entry in enumerate(spec.split(","), start=1):
            key_id, separator, material = entry.partition("=")
            if not separator:
                raise ValueError(f"key spec entry {position} has no '=': expected 'key_id=material'")
            if not KEY_ID_PATTERN.fullmatch(key_id):
                raise ValueError(
                    f"key spec entry {position} has an invalid key id {key_id!r}: "
                    "use 1 to 16 of A-Z, a-z, 0-9, '_' and '-'"
                )
            if not material:
                raise ValueError(f"key spec entry {position} ({key_id!r}) has empty key material")
            if key_id in keys:
                raise ValueError(f"key spec entry {position} repeats key id {key_id!r}")
            keys[key_id] = material
        if active_key_id not in keys:
            raise ValueError(f"active key id {active_key_id!r} is not in the key spec (it has {sorted(keys)})")
        return cls(keys, active_key_id)

    @property
    def active_key_id(self) -> str:
        return self._active_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={sorted(self._ciphers)}, active_key_id={self._active_key_id!r})"

    def encrypt(self, plaintext: str) -> str:
        if not isinstance(plaintext, str):
            raise TypeError("plaintext must be a str")
        key_id = self._active_key_id
        nonce = os.urandom(NONCE_BYTES)
        # The key id as associated data: relabelling a token with another key id must fail, not fall back.
        ciphertext = self._ciphers[key_id].encrypt(nonce, plaintext.encode("utf-8"), key_id.encode("ascii"))
        return f"{key_id}{TOKEN_SEPARATOR}{_b64encode(nonce + ciphertext)}"

    def decrypt(self, token: str) -> str:
        key_id = self.key_id_of(token)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"unknown key id {key_id!r}")
        data = _b64decode(token[len(key_id) + 1:])
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("malformed token")
        try:
            plaintext = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode("ascii"))
            return plaintext.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionError("the token does not authenticate: wrong key or tampered with") from None

    def key_id_of(self, token: str) -> str:
        if not isinstance(token, str):
            raise DecryptionError("a token must be a str")
        key_id, separator, _ = token.partition(TOKEN_SEPARATOR)
        if not separator or not KEY_ID_PATTERN.fullmatch(key_id):
            raise DecryptionError("malformed token: expected '<key_id>$<data>'")
        return key_id

    def needs_rotation(self, token: str) -> bool:
        return self.key_id_of(token) != self._active_key_id

    def reencrypt(self, token: str) -> str:
        return self.encrypt(self.decrypt(token))


def blind_index(value: str, key_material: str, purpose: str) -> str:
    """Deterministic keyed digest of ``value`` for equality look-ups on an encrypted column.

    The purpose is hashed in so the index of one column cannot be joined with another's, and so equal values
    in two columns do not reveal that they are equal. Normalise the value before calling: '138 1234 5678' and
    '13812345678' give different indexes.
    """
    if not isinstance(value, str):
        raise TypeError("value must be a str")
    # A NUL in the purpose would make (purpose, value) pairs ambiguous, e.g. ("a\0b", "c") vs ("a", "b\0c").
    if not isinstance(purpose, str) or not purpose or "\x00" in purpose:
        raise ValueError("purpose must be a non-empty str without NUL characters")
    key = derive_key(key_material, BLIND_INDEX_INFO)
    message = (purpose + "\x00" + value).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()
