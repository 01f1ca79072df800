"""The checks themselves: the CRV1 payload, the JSON report, the published keys. Standard library and
``cryptography`` only.

A report's signature is Ed25519 over the canonical JSON of its document (keys sorted, no spaces, UTF-8, non-ASCII
characters as they are). The compact payload carries the signed bytes as they were signed::

    CRV1:<base45( zlib( key id (8 bytes) | signature (64 bytes) | canonical JSON of the document ) )>

Verdicts, in the order they are decided: malformed (not a Credence report), unknown_key (signed by a key the
authority does not publish, or by one retired before the check), tampered (the signature does not match),
expired (the report's own expiry has passed), valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

VALID, TAMPERED, EXPIRED, UNKNOWN_KEY, MALFORMED = "valid", "tampered", "expired", "unknown_key", "malformed"
# what the command exits with; 1: the check could not be made (a file unreadable, the keys unreachable); 2: usage
EXIT_CODES = {VALID: 0, TAMPERED: 3, EXPIRED: 4, UNKNOWN_KEY: 5, MALFORMED: 6}
COULD_NOT_CHECK = 1

PAYLOAD_PREFIX = "CRV1:"
MAX_PAYLOAD_CHARS = 8000
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_KEYS_BYTES = 1024 * 1024
KEY_ID_BYTES, SIGNATURE_BYTES = 8, 64
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BASE45_VALUES = {char: value for value, char in enumerate(BASE45)}


class CouldNotCheck(Exception):
    """The check could not be made at all (no keys, an unreadable file): no verdict."""


@dataclass(frozen=True)
class Key:
    """A published report key: ``retire_after`` None for one not scheduled to retire."""

    kid: str
    public_key: ed25519.Ed25519PublicKey
    status: str = "current"
    not_before: datetime | None = None
    retire_after: datetime | None = None


@dataclass
class Result:
    verdict: str
    message: str
    document: dict | None = None  # what was signed, when the signature is good
    key_id: str | None = None
    checks: list[str] = field(default_factory=list)  # what was looked at, for the reader

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "message": self.message, "key_id": self.key_id, "document": self.document,
                "checks": self.checks}


# --- encodings ----------------------------------------------------------------------------------------------

def canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def base45_decode(text: str) -> bytes:
    """RFC 9285."""
    try:
        values = [_BASE45_VALUES[char] for char in text]
    except KeyError:
        raise ValueError("a character outside base45's alphabet") from None
    if len(values) % 3 == 1:
        raise ValueError("a base45 length that leaves one character over")
    out = bytearray()
    for start in range(0, len(values), 3):
        chunk = values[start:start + 3]
        value = sum(digit * 45 ** power for power, digit in enumerate(chunk))
        if value > (0xFFFF if len(chunk) == 3 else 0xFF):
            raise ValueError("a base45 group too large for its bytes")
        out += value.to_bytes(len(chunk) - 1, "big")
    return bytes(out)


def decode_payload(text: str) -> tuple[str, bytes, bytes]:
    """(key id, signature, signed bytes) of a CRV1 payload; ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError("a payload is text")
    text = text.strip()
    if not text.startswith(PAYLOAD_PREFIX):
        raise ValueError(f"a Credence report payload starts with {PAYLOAD_PREFIX}")
    if len(text) > MAX_PAYLOAD_CHARS:
        raise ValueError("longer than any report's payload")
    packed = base45_decode(text[len(PAYLOAD_PREFIX):])
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, MAX_DOCUMENT_BYTES + KEY_ID_BYTES + SIGNATURE_BYTES)
    except zlib.error:
        raise ValueError("it does not inflate") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("cut short, or larger than any report")
    if len(raw) <= KEY_ID_BYTES + SIGNATURE_BYTES:
        raise ValueError("too short to hold a key id, a signature and a document")
    return (raw[:KEY_ID_BYTES].hex(), raw[KEY_ID_BYTES:KEY_ID_BYTES + SIGNATURE_BYTES],
            raw[KEY_ID_BYTES + SIGNATURE_BYTES:])


def parse_time(text) -> datetime | None:
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is None:
        if len(text) == 10:  # a date alone: midnight UTC
            return moment.replace(tzinfo=timezone.utc)
        raise ValueError(f"{text!r} has no time zone")
    return moment


# --- keys ---------------------------------------------------------------------------------------------------

def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """The authority's key id: the first 16 hex digits of the SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _jwk_key(entry: dict) -> Key:
    if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or not isinstance(entry.get("x"), str):
        raise ValueError("not an Ed25519 JWK")
    x = entry["x"]
    public = ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    kid = key_id(public)
    if entry.get("kid") not in (None, kid):
        raise ValueError(f"its kid {entry.get('kid')!r} is not its key's id {kid}")
    return Key(kid, public, str(entry.get("status") or "current"), parse_time(entry.get("not_before")),
               parse_time(entry.get("retire_after")))


def keys_from_document(document) -> dict[str, Key]:
    """The keys of /.well-known/credence-report-keys.json (a JWK Set with status, not_before, retire_after)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise CouldNotCheck("the keys file is not a key set: a JSON object with a list of keys")
    keys = {}
    for position, entry in enumerate(document["keys"]):
        try:
            key = _jwk_key(entry)
        except (ValueError, TypeError, binascii.Error, AttributeError) as why:
            raise CouldNotCheck(f"key {position} of the key set: {why}") from None
        keys[key.kid] = key
    if not keys:
        raise CouldNotCheck("the key set has no keys")
    return keys


def load_keys(text: str) -> dict[str, Key]:
    """A key set as the authority publishes it (JSON), or one public key (PEM)."""
    if text.lstrip().startswith("-----BEGIN"):
        try:
            public = serialization.load_pem_public_key(text.encode())
        except ValueError as why:
            raise CouldNotCheck(f"the PEM key does not load: {why}") from None
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise CouldNotCheck("the PEM key is not an Ed25519 key")
        return {key_id(public): Key(key_id(public), public)}
    try:
        return keys_from_document(json.loads(text))
    except ValueError:
        raise CouldNotCheck("the keys file is neither a JSON key set nor a PEM public key") from None


def fetch_keys(url: str, timeout: float = 10.0) -> dict[str, Key]:
    """The key set at ``url`` (https, or http for a test server), fetched now: never a cached copy."""
    if not url.lower().startswith(("https://", "http://")):
        raise CouldNotCheck("--keys-url takes an https:// address")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "Cache-Control": "no-cache",
                                                   "User-Agent": "credence-report-verifier"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the scheme is checked)
            body = response.read(MAX_KEYS_BYTES + 1)
    except OSError as why:
        raise CouldNotCheck(f"the keys could not be fetched from {url}: {why}") from None
    if len(body) > MAX_KEYS_BYTES:
        raise CouldNotCheck("the key set is larger than any key set")
    return load_keys(body.decode("utf-8", "replace"))


# --- verdicts -----------------------------------------------------------------------------------------------

def _expiry(document) -> datetime:
    if not isinstance(document, dict) or not isinstance(document.get("verify_url"), str) \
            or not isinstance(document.get("report_code"), str):
        raise ValueError("not a report document")
    expires_at = parse_time(document["expires_at"])
    if expires_at is None:
        raise ValueError("no expiry")
    return expires_at


def _signature_holds(key: Key, signature: bytes, message: bytes) -> bool:
    try:
        key.public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def judge(key_id_: str, signature: bytes, message: bytes, document, keys: Mapping[str, Key],
          now: datetime) -> Result:
    """The verdict on signed bytes (``document`` their JSON, None when they are not)."""
    key = keys.get(key_id_)
    if document is None:
        if key is not None and not _signature_holds(key, signature, message):
            return Result(TAMPERED, "The signature does not match: the report was changed after it was signed.",
                          key_id=key_id_)
        return Result(MALFORMED, "This is not a Credence verification report.")
    try:
        expires_at = _expiry(document)
    except (KeyError, TypeError, ValueError):
        return Result(MALFORMED, "This is not a Credence verification report.")
    if key is None:
        return Result(UNKNOWN_KEY, f"Signed with key {key_id_}, which is not among the authority's published keys: "
                                   "the report is not the authority's, or this copy of the keys is old.",
                      key_id=key_id_)
    if key.retire_after is not None and now > key.retire_after:
        return Result(UNKNOWN_KEY, f"Signed with key {key_id_}, which the authority retired on "
                                   f"{key.retire_after.isoformat()}: it is not trusted after that.", key_id=key_id_)
    if not _signature_holds(key, signature, message):
        return Result(TAMPERED, "The signature does not match: the report was changed after it was signed.",
                      key_id=key_id_)
    if now >= expires_at:
        return Result(EXPIRED, f"Signed by the authority, but the report expired at {expires_at.isoformat()}; ask "
                               "the holder for a new one.", document, key_id_)
    return Result(VALID, f"Signed by the authority (key {key_id_}, {key.status}) and valid until "
                         f"{expires_at.isoformat()}. Its online page {document['verify_url']} shows whether the "
                         "certificate was revoked or replaced since.", document, key_id_)


def verify_payload(text: str, keys: Mapping[str, Key], now: datetime | None = None) -> Result:
    """A CRV1 payload, as read from the report's second QR code."""
    now = now or datetime.now(timezone.utc)
    try:
        key, signature, message = decode_payload(text)
    except ValueError as why:
        return Result(MALFORMED, f"This is not a Credence report payload: {why}.")
    try:
        document = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    return judge(key, signature, message, document, keys, now)


def verify_signed(signed, keys: Mapping[str, Key], now: datetime | None = None) -> Result:
    """A report as JSON: ``{"document", "algorithm", "key_id", "signature"}``, or the online answer holding one
    as ``signed_report``."""
    now = now or datetime.now(timezone.utc)
    if isinstance(signed, dict) and isinstance(signed.get("signed_report"), dict):
        signed = signed["signed_report"]
    try:
        document = signed["document"]
        key = signed["key_id"]
        signature = base64.b64decode(signed["signature"], validate=True)
        if signed.get("algorithm") != "Ed25519" or not isinstance(key, str) or not isinstance(document, dict):
            raise ValueError("not an Ed25519 report")
        message = canonical(document)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return Result(MALFORMED, "This is not a Credence verification report.")
    return judge(key, signature, message, document, keys, now)


def verify_json_text(text: str, keys: Mapping[str, Key], now: datetime | None = None) -> Result:
    try:
        signed = json.loads(text)
    except ValueError:
        return Result(MALFORMED, "The file is not JSON.")
    return verify_signed(signed, keys, now)
