"""Keys for personal data at rest: field encryption with rotation, blind indexes, code and token digests."""

from __future__ import annotations

import hashlib
import hmac

from credence_common.security.crypto import KeyRing, blind_index, derive_key


class PersonalDataProtection:
    def __init__(self, keyring: KeyRing, index_key_material: str):
        self.keyring = keyring
        self._index_material = index_key_material
        # Separate keys per use, derived from one secret: a leak of one digest table helps with no other.
        self.code_key = derive_key(index_key_material, b"credence-identity-codes/v1")
        self.token_key = derive_key(index_key_material, b"credence-identity-refresh-tokens/v1")

    def encrypt(self, value: str) -> str:
        return self.keyring.encrypt(value)

    def decrypt(self, token: str) -> str:
        return self.keyring.decrypt(token)

    def index(self, value: str, purpose: str) -> str:
        return blind_index(value, self._index_material, purpose)

    def token_digest(self, secret: str) -> str:
        return hmac.new(self.token_key, secret.encode(), hashlib.sha256).hexdigest()
