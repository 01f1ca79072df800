"""The degree registry's HTTP contract (docs/degree-registry-contract.md) and our client of it,
``DEGREE_REGISTRY=http``: how an authority plugs in its own prior-education registry (学信网-like look-up).

One signed ``POST /v1/degree-lookups`` per look-up, personal data in the JSON body only:

- the request is signed with Ed25519 by our key (``Credence-Key-Id`` names it, so the registry can hold our old
  and new public keys at once while we rotate) over ``credence-degree-registry/v1 request``, the method, the path,
  ``Credence-Timestamp``, ``Credence-Nonce`` and the body's SHA-256, one per line;
- the answer is signed by the registry's key (``Registry-Key-Id``) over ``credence-degree-registry/v1 response``,
  the status, *our request's nonce*, ``Registry-Timestamp`` and the body's SHA-256: an answer to another request,
  an old answer replayed or one made up on the way is refused;
- the look-up reads only, so a transport error is retried (a fresh timestamp and nonce, the same ``request_id``),
  and a circuit breaker (pybreaker) stops asking a registry that keeps failing.

A registry that cannot be reached, or whose answer cannot be believed, never means "not found": the candidate
gets 503 ``degree_registry_unavailable`` and nothing is recorded (``prior_education.record``).

Keys are PEM files in a secrets directory (``DEGREE_REGISTRY_SECRETS_DIR``), reread when they change, so a
rotation needs no restart: ``signing/<key id>.pem`` (our Ed25519 private keys), ``registry/<key id>.pem`` (the
registry's Ed25519 public keys we trust now) and, optionally, ``active_key_id`` (which of ours signs; when it is
absent, ``DEGREE_REGISTRY_KEY_ID``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pybreaker
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import Counter

from credence_common.contracts.errors import ServiceUnavailable
from credence_common.security.secret_files import ReloadingSecrets

log = logging.getLogger(__name__)

LOOKUP_PATH = "/v1/degree-lookups"
REQUEST_CONTEXT = "credence-degree-registry/v1 request"
RESPONSE_CONTEXT = "credence-degree-registry/v1 response"
HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE = (
    "Credence-Key-Id", "Credence-Timestamp", "Credence-Nonce", "Credence-Signature")
REGISTRY_KEY_ID, REGISTRY_TIMESTAMP, REGISTRY_SIGNATURE = (
    "Registry-Key-Id", "Registry-Timestamp", "Registry-Signature")
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NONCE = re.compile(r"^[0-9a-f]{32}$")
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TOLERANCE_SECONDS = 300

# Look-ups by outcome: found and not_found are answers; every other outcome is a 503 to the candidate.
LOOKUPS = Counter("credence_degree_registry_lookups_total",
                  "Degree registry look-ups by outcome: found, not_found, or why no answer could be used (timeout, "
                  "unreachable, server_error, refused, bad_signature, invalid_response, circuit_open).",
                  ["outcome"])
OUTCOMES = ("found", "not_found", "timeout", "unreachable", "server_error", "refused", "bad_signature",
            "invalid_response", "circuit_open")

UNAVAILABLE_MESSAGE = ("The degree registry cannot be asked just now, so your degree was not checked and nothing "
                       "was recorded. Please try again in a few minutes.")


# --- the documented primitives ------------------------------------------------------------------------

def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What we sign: six lines joined by ``\\n``, no trailing newline."""
    return "\n".join((REQUEST_CONTEXT, method.upper(), path, timestamp, nonce, body_digest(body))).encode()


def response_message(status: int, request_nonce: str, timestamp: str, body: bytes) -> bytes:
    """What the registry signs: binds its answer to our request (its nonce) and to the status it answered."""
    return "\n".join((RESPONSE_CONTEXT, str(status), request_nonce, timestamp, body_digest(body))).encode()


def sign(private_key: ed25519.Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message)).decode("ascii")


def verify(public_key: ed25519.Ed25519PublicKey, message: bytes, signature: str | None) -> bool:
    try:
        public_key.verify(base64.b64decode(signature or "", validate=True), message)
        return True
    except (InvalidSignature, ValueError, binascii.Error):
        return False


def encode_body(document: dict) -> bytes:
    """Our request bodies: compact UTF-8 JSON. The registry verifies the bytes it received, so it need not
    serialise anything the same way."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_request_headers(key_id: str, private_key, method: str, path: str, body: bytes,
                           timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or secrets.token_hex(16)
    return {HEADER_KEY_ID: key_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: sign(private_key, request_message(method, path, timestamp, nonce, body))}


def timestamp_is_fresh(timestamp: str | None, now: float, tolerance_seconds: int = TOLERANCE_SECONDS) -> bool:
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now) <= tolerance_seconds


# --- keys: from a secrets directory, reread when it changes -------------------------------------------

SIGNING_DIR, REGISTRY_DIR, ACTIVE_KEY_FILE = "signing", "registry", "active_key_id"


@dataclass(frozen=True)
class RegistryKeys:
    signing_key_id: str
    signing_key: ed25519.Ed25519PrivateKey
    registry_keys: dict[str, ed25519.Ed25519PublicKey] = field(default_factory=dict)


def _pem_files(directory: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(directory.glob("*.pem"))}


def _load(path: Path, private: bool):
    """An Ed25519 key from a PEM file; the error names the file (never its content)."""
    name = f"{path.parent.name}/{path.name}"
    try:
        data = path.read_bytes()
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (OSError, ValueError, TypeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a PEM key"
        raise ValueError(f"{name}: {reason}") from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ValueError(f"{name} is not an Ed25519 {'private' if private else 'public'} key")
    return key


def active_key_file(base: Path) -> Path:
    """``active_key_id`` beside ``signing/``, or inside it: on Kubernetes ``signing/`` and ``registry/`` are two
    Secret volumes (a Secret volume has no subdirectories), and the signing Secret carries which of its keys signs."""
    beside = base / ACTIVE_KEY_FILE
    return beside if beside.exists() else base / SIGNING_DIR / ACTIVE_KEY_FILE


def load_keys(directory: str | os.PathLike, default_key_id: str = "") -> RegistryKeys:
    """Raises ``ValueError`` naming what is wrong (never a key's material)."""
    base = Path(directory)
    try:
        active_file = active_key_file(base)
        key_id = active_file.read_text("ascii").strip() if active_file.exists() else default_key_id.strip()
        if not key_id:
            raise ValueError(f"no {ACTIVE_KEY_FILE} file and DEGREE_REGISTRY_KEY_ID is empty")
        if not KEY_ID.match(key_id):
            raise ValueError(f"the signing key id {key_id[:64]!r} is not 1-64 of A-Z a-z 0-9 . _ -")
        signing_key = _load(base / SIGNING_DIR / f"{key_id}.pem", private=True)
        registry_keys = {}
        for registry_key_id, path in _pem_files(base / REGISTRY_DIR).items():
            if not KEY_ID.match(registry_key_id):
                raise ValueError(f"{REGISTRY_DIR}/{path.name}: a key's file is named by its key id, 1-64 of "
                                 "A-Z a-z 0-9 . _ -")
            registry_keys[registry_key_id] = _load(path, private=False)
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"degree registry keys in {base}: {error}") from None
    if not registry_keys:
        raise ValueError(f"degree registry keys in {base}: no registry public key in {REGISTRY_DIR}/*.pem")
    return RegistryKeys(key_id, signing_key, registry_keys)


class KeyStore:
    """The keys in a secrets directory, reread when a file in it changes (a mounted Secret updated in place): a
    rotation needs no restart. A broken update keeps the last good keys and is logged, so a half-written file
    never stops the look-ups; a broken directory at start-up stops the start."""

    def __init__(self, directory: str | os.PathLike, default_key_id: str = "", check_interval_seconds: float = 5.0):
        self.directory = Path(directory)
        self.default_key_id = default_key_id
        self._files = ReloadingSecrets(f"Degree registry keys from {self.directory}", self._key_files,
                                       lambda: load_keys(self.directory, default_key_id), self._describe,
                                       check_interval_seconds)

    def _key_files(self) -> list[Path]:
        paths = [self.directory / ACTIVE_KEY_FILE, self.directory / SIGNING_DIR / ACTIVE_KEY_FILE]
        return paths + sorted((self.directory / SIGNING_DIR).glob("*.pem")) + sorted(
            (self.directory / REGISTRY_DIR).glob("*.pem"))

    @staticmethod
    def _describe(keys: RegistryKeys) -> str:
        return f"signing with {keys.signing_key_id}, trusting registry keys {', '.join(keys.registry_keys)}"

    def keys(self, force: bool = False) -> RegistryKeys:
        return self._files.current(force)

    def registry_key(self, key_id: str):
        """The registry's public key of this id; an unknown id rereads the directory once (a rotation just done)."""
        key = self.keys().registry_keys.get(key_id)
        if key is None:
            key = self.keys(force=True).registry_keys.get(key_id)
        return key


# --- answers ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegistryAnswer:
    found: bool
    registry: str
    level: str | None = None
    institution: str | None = None
    graduation_date: date | None = None
    reference: str | None = None


class RegistryFailure(Exception):
    """No answer we can use. ``outcome`` is the metric's label; ``retryable``: asking again at once may help.
    The message never holds personal data: it is logged."""

    def __init__(self, outcome: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.outcome = outcome
        self.retryable = retryable


def _optional_text(document: dict, name: str, limit: int = 200) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise RegistryFailure("invalid_response", f"the answer's {name} is not a string of 1-{limit} characters")
    return value.strip()


def parse_answer(content: bytes, request_id: str, registry_name: str) -> RegistryAnswer:
    """A verified 200 body: ``{"request_id", "result": "found" | "not_found", "degree"?, "registry_reference"?}``.
    Anything else is ``invalid_response``: never read as not found."""
    try:
        document = json.loads(content)
        if not isinstance(document, dict):
            raise TypeError
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise RegistryFailure("invalid_response", "the answer is not a JSON object") from None
    if document.get("request_id") != request_id:
        raise RegistryFailure("invalid_response", "the answer is for another request_id")
    result = document.get("result")
    if result == "not_found":
        return RegistryAnswer(False, registry_name)
    if result != "found":
        # the value itself is not quoted: this message is logged, and nothing the registry sends is echoed there
        raise RegistryFailure("invalid_response", "the answer's result is neither found nor not_found")
    degree = document.get("degree") or {}
    if not isinstance(degree, dict):
        raise RegistryFailure("invalid_response", "the answer's degree is not an object")
    graduation = _optional_text(degree, "graduation_date", 10)
    try:
        graduation_date = date.fromisoformat(graduation) if graduation else None
    except ValueError:
        raise RegistryFailure("invalid_response", "the answer's degree.graduation_date is not YYYY-MM-DD") from None
    return RegistryAnswer(True, registry_name, _optional_text(degree, "level", 40),
                          _optional_text(degree, "institution"), graduation_date,
                          _optional_text(document, "registry_reference", 128))


def _error_code(content: bytes) -> str:
    try:
        error = json.loads(content).get("error") or {}
        code = error.get("code") if isinstance(error, dict) else None
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return "?"
    # only a code's shape is logged: a registry echoing what it was sent must not put personal data in our logs
    return code if isinstance(code, str) and ERROR_CODE.match(code) else "?"


# --- the adapter --------------------------------------------------------------------------------------

def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("degree_registry_unavailable", UNAVAILABLE_MESSAGE)


class HttpDegreeRegistry:
    """Our client of an authority's registry speaking docs/degree-registry-contract.md."""

    name = "http-degree-registry"

    def __init__(self, url: str, keys: KeyStore, timeout_seconds: float = 3.0, attempts: int = 2,
                 retry_backoff_seconds: float = 0.2, breaker_failures: int = 5, breaker_reset_seconds: float = 30.0,
                 tolerance_seconds: int = TOLERANCE_SECONDS, http: requests.Session | None = None):
        self.url = url.rstrip("/") + LOOKUP_PATH
        self.path = urlsplit(self.url).path
        self.keys = keys
        self.timeout_seconds = timeout_seconds
        self.attempts = max(1, attempts)
        self.retry_backoff_seconds = retry_backoff_seconds
        self.tolerance_seconds = tolerance_seconds
        self.http = http or requests.Session()
        self.breaker = pybreaker.CircuitBreaker(fail_max=breaker_failures, reset_timeout=breaker_reset_seconds,
                                                name="degree-registry")

    def look_up(self, full_name: str, resident_id_number: str, certificate_number: str) -> RegistryAnswer:
        """found / not_found as the registry signed it; anything else raises 503 ``degree_registry_unavailable``
        after counting and logging why (without the candidate's data)."""
        request_id = str(uuid.uuid4())
        body = encode_body({"request_id": request_id, "certificate_number": certificate_number,
                            "holder_name": full_name, "resident_id_number": resident_id_number})
        failure = None
        try:
            # calling() holds the breaker's lock only to decide and to count, not during the HTTP exchange
            with self.breaker.calling():
                try:
                    answer = self._with_retries(body, request_id)
                except RegistryFailure as failed:
                    failure = failed
                    raise
        except pybreaker.CircuitBreakerError:
            if failure is None:  # refused by the open breaker without asking
                failure = RegistryFailure("circuit_open", f"the circuit breaker is open after "
                                          f"{self.breaker.fail_max} failed look-ups in a row")
            else:  # this failure opened it: counted as what it was
                failure = RegistryFailure(failure.outcome, f"{failure}; the circuit breaker opens for "
                                          f"{self.breaker.reset_timeout:g} s")
            self._failed(failure, request_id)
            raise unavailable() from None
        except RegistryFailure:
            self._failed(failure, request_id)
            raise unavailable() from None
        LOOKUPS.labels("found" if answer.found else "not_found").inc()
        return answer

    def _failed(self, failure: RegistryFailure, request_id: str) -> None:
        LOOKUPS.labels(failure.outcome).inc()
        log.warning("Degree registry look-up %s gave no usable answer (%s): %s; the candidate was told to try "
                    "again later", request_id, failure.outcome, failure)

    def _with_retries(self, body: bytes, request_id: str) -> RegistryAnswer:
        for attempt in range(1, self.attempts + 1):
            try:
                return self._exchange(body, request_id)
            except RegistryFailure as failure:
                if not failure.retryable or attempt == self.attempts:
                    raise
                log.info("Degree registry look-up %s: attempt %d failed (%s), asking again", request_id, attempt,
                         failure.outcome)
                time.sleep(self.retry_backoff_seconds * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, body: bytes, request_id: str) -> RegistryAnswer:
        keys = self.keys.keys()
        headers = signed_request_headers(keys.signing_key_id, keys.signing_key, "POST", self.path, body)
        headers.update({"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": "credence-identity"})
        try:
            answer = self.http.post(self.url, data=body, headers=headers, timeout=self.timeout_seconds,
                                    allow_redirects=False)
        except requests.Timeout:
            raise RegistryFailure("timeout", f"no answer within {self.timeout_seconds} s", retryable=True) from None
        except requests.RequestException as error:
            raise RegistryFailure("unreachable", f"could not be reached ({type(error).__name__})",
                                  retryable=True) from None
        status = answer.status_code
        if status >= 500 or status == 429:
            # unsigned 5xx from a proxy are common and change nothing we do: retried without believing them
            raise RegistryFailure("server_error", f"answered {status} ({_error_code(answer.content)})",
                                  retryable=True)
        self._verify_answer(answer, headers[HEADER_NONCE])
        if status != 200:
            raise RegistryFailure("refused", f"refused the look-up: {status} {_error_code(answer.content)}")
        return parse_answer(answer.content, request_id, self.name)

    def _verify_answer(self, answer: requests.Response, request_nonce: str) -> None:
        key_id, timestamp = answer.headers.get(REGISTRY_KEY_ID), answer.headers.get(REGISTRY_TIMESTAMP)
        signature = answer.headers.get(REGISTRY_SIGNATURE)
        if not key_id or not timestamp or not signature or not KEY_ID.match(key_id):
            raise RegistryFailure("bad_signature", f"answered {answer.status_code} without Registry-* signature "
                                  "headers")
        key = self.keys.registry_key(key_id)
        if key is None:
            raise RegistryFailure("bad_signature", f"answered signed by registry key {key_id!r}, which we do not "
                                  "trust (add its public key to registry/)")
        if not verify(key, response_message(answer.status_code, request_nonce, timestamp, answer.content),
                      signature):
            raise RegistryFailure("bad_signature", f"the answer's signature does not verify with registry key "
                                  f"{key_id!r}")
        if not timestamp_is_fresh(timestamp, time.time(), self.tolerance_seconds):
            raise RegistryFailure("bad_signature", f"the answer was signed more than {self.tolerance_seconds} s "
                                  "from now (a replay, or a clock to fix)")


def http_registry(config: dict, production: bool) -> HttpDegreeRegistry:
    """``DEGREE_REGISTRY=http`` from a service's config. Raises ``ValueError`` naming the setting at fault."""
    url = str(config.get("DEGREE_REGISTRY_URL") or "")
    if not url.startswith(("https://", "http://")):
        raise ValueError("DEGREE_REGISTRY=http needs DEGREE_REGISTRY_URL, the registry's base URL (https://…)")
    if production and not url.startswith("https://"):
        raise ValueError("DEGREE_REGISTRY_URL must be https:// in production (an emulator is for tests and staging)")
    secrets_dir = str(config.get("DEGREE_REGISTRY_SECRETS_DIR") or "")
    if not secrets_dir:
        raise ValueError("DEGREE_REGISTRY=http needs DEGREE_REGISTRY_SECRETS_DIR (signing/<key id>.pem and "
                         "registry/<key id>.pem)")
    keys = KeyStore(secrets_dir, str(config.get("DEGREE_REGISTRY_KEY_ID") or ""),
                    float(config.get("DEGREE_REGISTRY_KEY_CHECK_SECONDS", 5)))
    return HttpDegreeRegistry(url, keys, float(config.get("DEGREE_REGISTRY_TIMEOUT_SECONDS", 3)),
                              int(config.get("DEGREE_REGISTRY_ATTEMPTS", 2)),
                              float(config.get("DEGREE_REGISTRY_RETRY_BACKOFF_SECONDS", 0.2)),
                              int(config.get("DEGREE_REGISTRY_BREAKER_FAILURES", 5)),
                              float(config.get("DEGREE_REGISTRY_BREAKER_RESET_SECONDS", 30)))


# --- the sandbox (DEGREE_REGISTRY=sandbox: development and staging) ----------------------------------------

REGISTRIES = ("sandbox", "http")


class SandboxDegreeRegistry:
    """Deterministic: numbers starting with 99999 are unknown to the registry, all others are found."""

    name = "sandbox-degree-registry"

    def look_up(self, full_name: str, resident_id_number: str, certificate_number: str) -> RegistryAnswer:
        return RegistryAnswer(found=not certificate_number.startswith("99999"), registry=self.name)
