"""The report keys the authority publishes, and their rotation (rules in plain Python: the settings are read by
``dependencies.ReportKeys``).

The current key (``VERIFICATION_REPORT_SIGNING_KEY``) signs every new report. When it is replaced, the old one
goes on verifying the reports it signed until they have expired: ``VERIFICATION_REPORT_PREVIOUS_KEYS_JSON``
lists such previous public keys, each as the JWK that /.well-known/credence-report-keys.json published for it
with a ``retire_after`` date, after which it verifies nothing. ``VERIFICATION_REPORT_KEY_SINCE`` says when the
current key started signing (published as its ``not_before``).

    VERIFICATION_REPORT_PREVIOUS_KEYS_JSON='[{"kty": "OKP", "crv": "Ed25519", "x": "...", "kid": "...",
                                              "not_before": "2026-01-05T00:00:00+00:00",
                                              "retire_after": "2027-02-05T00:00:00+00:00"}]'

The setting holds public keys only; its name does not end in ``_KEYS`` because it is no secret (an empty list is
the normal case, and secret settings must not be empty outside development).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from credence_common.contracts.verification import ReportCheck
from credence_common.security import signing
from services.verification.domain import reports

ISSUER = "Credence"
WELL_KNOWN_PATH = "/.well-known/credence-report-keys.json"


def parse_time(text: object, setting: str) -> datetime | None:
    """An ISO 8601 time with its zone (a date alone means midnight UTC); empty means not stated."""
    if text is None or str(text).strip() == "":
        return None
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{setting}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        if len(str(text).strip()) == 10:  # a date: midnight UTC
            return moment.replace(tzinfo=UTC)
        raise ValueError(f"{setting}: {text!r} has no time zone")
    return moment


def current_key(private_key: signing.PrivateKey, since: datetime | None) -> reports.TrustedKey:
    public = private_key.public_key()
    return reports.TrustedKey(signing.key_id(public), public, "current", since, None)


def previous_keys(text: object, setting: str = "VERIFICATION_REPORT_PREVIOUS_KEYS_JSON"
                  ) -> tuple[reports.TrustedKey, ...]:
    """The previous keys a setting lists (a JSON list of JWKs with ``retire_after``); ValueError, naming the
    setting and the entry, for anything else: a service refuses to start rather than trust a key by mistake."""
    if text is None or str(text).strip() == "":
        return ()
    try:
        entries = json.loads(str(text))
    except ValueError:
        raise ValueError(f"{setting} is not JSON: a list of the previous keys' JWKs") from None
    if not isinstance(entries, list):
        raise ValueError(f"{setting} is a JSON list of the previous keys' JWKs")
    keys = []
    for position, entry in enumerate(entries):
        try:
            public = signing.load_public_jwk(entry)
            retire_after = parse_time(entry.get("retire_after"), "retire_after")
            if retire_after is None:
                raise ValueError("a previous key needs its retire_after")
            keys.append(reports.TrustedKey(signing.key_id(public), public, "previous",
                                           parse_time(entry.get("not_before"), "not_before"), retire_after))
        except ValueError as why:
            raise ValueError(f"{setting}[{position}]: {why}") from None
    return tuple(keys)


def trusted_keys(current: reports.TrustedKey, previous: Iterable[reports.TrustedKey], now: datetime
                 ) -> dict[str, reports.TrustedKey]:
    """The keys that verify at ``now``, by key id: the current one and the previous ones not yet retired."""
    keys = {key.key_id: key for key in previous if key.retire_after is None or now <= key.retire_after}
    keys[current.key_id] = current
    return keys


def key_entry(key: reports.TrustedKey) -> dict[str, Any]:
    return {**signing.public_jwk(key.public_key), "status": key.status,
            "not_before": key.not_before.isoformat() if key.not_before else None,
            "retire_after": key.retire_after.isoformat() if key.retire_after else None,
            "public_key_pem": signing.public_key_pem_of(key.public_key)}


def key_set(current: reports.TrustedKey, previous: Iterable[reports.TrustedKey], now: datetime) -> dict[str, Any]:
    """The well-known document: every key that verifies today, the current one first."""
    keys = trusted_keys(current, previous, now)
    ordered = [current] + sorted((k for k in keys.values() if k is not current),
                                 key=lambda k: k.retire_after or now, reverse=True)
    return {"issuer": ISSUER, "algorithm": reports.ALGORITHM, "payload_format": reports.PAYLOAD_PREFIX[:-1],
            "keys": [key_entry(key) for key in ordered]}


def trusted_from_key_set(document: dict[str, Any]) -> dict[str, reports.TrustedKey]:
    """The keys of a well-known document, as ``verify_signed`` and ``verify_payload`` take them."""
    keys = {}
    for entry in document.get("keys", []):
        public = signing.load_public_jwk(entry)
        keys[signing.key_id(public)] = reports.TrustedKey(
            signing.key_id(public), public, entry.get("status", "current"),
            parse_time(entry.get("not_before"), "not_before"), parse_time(entry.get("retire_after"), "retire_after"))
    return keys


def check(trusted: dict[str, reports.TrustedKey], request: ReportCheck, now: datetime) -> dict[str, Any]:
    """The verdict on a signed report a caller sends (``ReportCheck``: its payload or its JSON), as the
    standalone verifier would give it with today's published keys. What is not a report at all is bad input
    (422 ``malformed_report``); a report that does not verify is an answer (tampered, expired, unknown_key)."""
    from credence_common.contracts.errors import InvalidInput

    if request.payload is not None:
        verdict = reports.verify_payload(request.payload, trusted, now)
    else:
        verdict = reports.verify_signed(request.signed_report or {}, trusted, now)
    if verdict.verdict == "malformed":
        raise InvalidInput("malformed_report", verdict.message + " Send the CRV1:... text of the report's second "
                                                                 "QR code, or its signed JSON.",
                           [{"field": "payload" if request.payload is not None else "signed_report",
                             "message": "not a Credence verification report"}])
    return {"verdict": verdict.verdict, "message": verdict.message, "key_id": verdict.key_id,
            "document": verdict.document}
