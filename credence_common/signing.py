"""Signatures shared by the services: provider notifications checked by payments, verification reports signed
by verification. Ed25519 everywhere we choose; RSA-SHA256 (PKCS#1 v1.5) where a provider uses it."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa


def load_private_key(text: str):
    """A PEM private key (Ed25519 or RSA), or any other string as the seed of a sandbox Ed25519 key."""
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the provider signing key must be Ed25519 or RSA")
        return key
    if not text:
        raise ValueError("the provider signing key is empty")
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(text.encode()).digest())


def load_public_key(text: str):
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ValueError("the provider public key must be Ed25519 or RSA")
    return key


def public_key_pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(private_key, message: bytes) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = private_key.sign(message)
    return base64.b64encode(signature).decode("ascii")


def signature_is_valid(public_key, message: bytes, signature_b64: str | None) -> bool:
    """Ed25519, or RSA-SHA256 (PKCS#1 v1.5) as Alipay and WeChat Pay use."""
    if not signature_b64:
        return False
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def key_id(public_key) -> str:
    """A short, stable name for a public key: which key signed, without sending the key."""
    raw = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(raw).hexdigest()[:16]
