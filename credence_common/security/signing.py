"""Signatures shared by the services: provider notifications checked by payments, verification reports signed
by verification. Ed25519 everywhere we choose; RSA-SHA256 (PKCS#1 v1.5) where a provider uses it."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

# the two kinds of key used here: Ed25519 everywhere we choose, RSA where a provider uses it
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def load_private_key(text: str) -> PrivateKey:
    """A PEM private key (Ed25519 or RSA), or any other string as the seed of a sandbox Ed25519 key."""
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the provider signing key must be Ed25519 or RSA")
        return key
    if not text:
        raise ValueError("the provider signing key is empty")
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(text.encode()).digest())


def load_public_key(text: str) -> PublicKey:
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ValueError("the provider public key must be Ed25519 or RSA")
    return key


def public_key_pem(key: PrivateKey) -> str:
    """The PEM of a private key's public half."""
    return public_key_pem_of(key.public_key())


def public_key_pem_of(public_key: PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(private_key: PrivateKey, message: bytes) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = private_key.sign(message)
    return base64.b64encode(signature).decode("ascii")


def signature_is_valid(public_key: PublicKey, message: bytes, signature_b64: str | None) -> bool:
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


def key_id(public_key: PublicKey) -> str:
    """A short, stable name for a public key: which key signed, without sending the key."""
    raw = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """An Ed25519 public key as a JSON Web Key (RFC 8037: kty OKP, crv Ed25519, x the raw 32 bytes in
    base64url), with its ``key_id`` as kid: what /.well-known/credence-report-keys.json publishes."""
    if not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise ValueError("only Ed25519 keys are published as JWK here")
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key_id(public_key),
            "x": _b64url(raw)}


def load_public_jwk(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    """The Ed25519 public key of a JWK as ``public_jwk`` writes it (a kid, if given, must be the key's)."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" \
            or not isinstance(jwk.get("x"), str):
        raise ValueError("a report key is a JWK with kty OKP, crv Ed25519 and x")
    text: str = jwk["x"]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as bad:
        raise ValueError("the JWK's x is not a base64url Ed25519 public key") from bad
    if jwk.get("kid") not in (None, key_id(key)):
        raise ValueError(f"the JWK's kid {jwk.get('kid')!r} is not its key's id {key_id(key)!r}")
    return key
