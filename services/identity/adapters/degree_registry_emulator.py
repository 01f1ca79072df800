"""A local degree registry speaking docs/degree-registry-contract.md, for tests and staging (an authority's
registry is not reachable from here, and no two authorities run the same one).

It is the registry's side, with its own keys: it verifies each request's Ed25519 signature with the Credence public
keys it is given (several at once, as during a rotation), refuses a timestamp more than 300 s from now and a nonce
it has seen within the window, and signs every answer (errors too) with its registry key, bound to the request's
nonce. Its records are the test's: ``add(certificate_number, holder_name, resident_id_number, …)``.

It can be told to fail (``faults``): 5xx answers, slow answers (a client timeout), answers signed by an impostor
key or by a key id we do not trust, unsigned answers, and a connection closed without an answer.

Run it alone (``python -m services.identity.adapters.degree_registry_emulator --keys DIR``) for staging: it writes
Credence's side of the secrets directory (a generated signing key and the emulator's public key) and prints the
settings to use.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from credence_common.emulation import EmulatedVendor
from services.identity.adapters.degree_registry import (
    ACTIVE_KEY_FILE,
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KEY_ID,
    LOOKUP_PATH,
    NONCE,
    REGISTRY_DIR,
    REGISTRY_KEY_ID,
    REGISTRY_SIGNATURE,
    REGISTRY_TIMESTAMP,
    SIGNING_DIR,
    TOLERANCE_SECONDS,
    request_message,
    response_message,
    sign,
    timestamp_is_fresh,
    verify,
)

MAX_BODY = 16 * 1024


def pem_private(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_credence_keys(directory: str | Path, signing: dict[str, ed25519.Ed25519PrivateKey],
                        registry: dict[str, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey],
                        active_key_id: str | None = None) -> Path:
    """Credence's secrets directory as identity reads it: our private keys, the registry's public ones."""
    base = Path(directory)
    (base / SIGNING_DIR).mkdir(parents=True, exist_ok=True)
    (base / REGISTRY_DIR).mkdir(parents=True, exist_ok=True)
    for key_id, key in signing.items():
        (base / SIGNING_DIR / f"{key_id}.pem").write_bytes(pem_private(key))
    for key_id, key in registry.items():
        (base / REGISTRY_DIR / f"{key_id}.pem").write_bytes(pem_public(key))
    if active_key_id is not None:
        (base / ACTIVE_KEY_FILE).write_text(active_key_id + "\n")
    return base


@dataclass
class Degree:
    certificate_number: str
    holder_name: str
    resident_id_number: str
    level: str = "bachelor"
    institution: str = "北京大学"
    graduation_date: str = "2015-07-01"
    registry_reference: str = field(default_factory=lambda: f"REG-{uuid.uuid4().hex[:12].upper()}")


@dataclass
class Faults:
    """What the emulator gets wrong on purpose. Counters count down once per request."""

    fail_requests: int = 0  # the next n requests answer 503 (unsigned, as a proxy in front would)
    delay_requests: int = 0  # the next n requests wait delay_seconds first (a client timeout)
    delay_seconds: float = 0.0
    drop_requests: int = 0  # the next n requests have their connection closed without an answer
    forge_answers: bool = False  # answers signed by an impostor key under the registry's key id
    unknown_key_id: bool = False  # answers signed by a key id Credence was never given
    unsigned_answers: bool = False  # answers without Registry-* headers
    stale_answers_seconds: int = 0  # answers signed with a timestamp this far in the past


class DegreeRegistryEmulator(EmulatedVendor):
    thread_name = "degree-registry-emulator"

    def __init__(self, credence_keys: dict[str, ed25519.Ed25519PublicKey] | None = None,
                 registry_key: ed25519.Ed25519PrivateKey | None = None, registry_key_id: str = "r1",
                 host: str = "127.0.0.1", port: int = 0, tolerance_seconds: int = TOLERANCE_SECONDS):
        self.credence_keys = dict(credence_keys or {})  # key id -> the public key it verifies with
        self.registry_key = registry_key or ed25519.Ed25519PrivateKey.generate()
        self.registry_key_id = registry_key_id
        self.impostor_key = ed25519.Ed25519PrivateKey.generate()
        self.tolerance_seconds = tolerance_seconds
        self.degrees: dict[str, Degree] = {}
        self.faults = Faults()
        self.seen_nonces: dict[str, float] = {}  # nonce -> when it was seen, kept for twice the window
        self.answered: dict[str, dict] = {}  # request_id -> the answer it got (a retry gets the same)
        self.requests: list[dict] = []  # what arrived: path, key id, status, request_id (no personal data)
        self.received_bodies: list[bytes] = []  # for the test to check what crossed the wire
        self.lock = threading.RLock()
        self._listen(_handler(self), host, port)

    def add(self, certificate_number: str, holder_name: str, resident_id_number: str, **details) -> Degree:
        with self.lock:
            degree = Degree(certificate_number, holder_name, resident_id_number, **details)
            self.degrees[certificate_number] = degree
            return degree

    def rotate_registry_key(self, key_id: str) -> ed25519.Ed25519PrivateKey:
        """The registry starts signing with a new key (Credence adds its public half beside the old)."""
        with self.lock:
            self.registry_key, self.registry_key_id = ed25519.Ed25519PrivateKey.generate(), key_id
            return self.registry_key

    # --- the contract ---------------------------------------------------------------------------------

    def check_request(self, method: str, path: str, headers, body: bytes, now: float) -> tuple[int, str, str] | None:
        """(status, code, message) refusing the request, or None when its signature, timestamp and nonce pass."""
        key_id, timestamp = headers.get(HEADER_KEY_ID) or "", headers.get(HEADER_TIMESTAMP) or ""
        nonce, signature = headers.get(HEADER_NONCE) or "", headers.get(HEADER_SIGNATURE) or ""
        if not key_id or not timestamp or not nonce or not signature:
            return 401, "signature_missing", "Credence-Key-Id, -Timestamp, -Nonce and -Signature are required"
        key = self.credence_keys.get(key_id) if KEY_ID.match(key_id) else None
        if key is None:
            return 401, "unknown_key", "no Credence public key has this key id"
        if not NONCE.match(nonce):
            return 401, "invalid_signature", "the nonce must be 32 lower-case hex characters"
        if not verify(key, request_message(method, path, timestamp, nonce, body), signature):
            return 401, "invalid_signature", "the signature does not verify"
        if not timestamp_is_fresh(timestamp, now, self.tolerance_seconds):
            return 401, "stale_timestamp", f"the timestamp is more than {self.tolerance_seconds} s from now"
        with self.lock:
            for old, seen in list(self.seen_nonces.items()):
                if seen < now - 2 * self.tolerance_seconds:
                    del self.seen_nonces[old]
            if nonce in self.seen_nonces:
                return 409, "replayed_nonce", "this nonce was already used"
            self.seen_nonces[nonce] = now
        return None

    def look_up(self, document) -> tuple[int, dict]:
        if not isinstance(document, dict):
            return 400, {"error": {"code": "invalid_request", "message": "the body must be a JSON object"}}
        fields = ("request_id", "certificate_number", "holder_name", "resident_id_number")
        if not all(isinstance(document.get(name), str) and document[name] for name in fields):
            return 400, {"error": {"code": "invalid_request", "message": f"{', '.join(fields)} are required"}}
        with self.lock:
            earlier = self.answered.get(document["request_id"])
            if earlier is not None:  # the same look-up again (a retry): the same answer
                return 200, earlier
            degree = self.degrees.get(document["certificate_number"])
            # found only when the holder matches too; a mismatch is not_found, never a hint that the number exists
            if (degree is None or degree.holder_name != document["holder_name"]
                    or degree.resident_id_number != document["resident_id_number"]):
                answer = {"request_id": document["request_id"], "result": "not_found"}
            else:
                answer = {"request_id": document["request_id"], "result": "found",
                          "degree": {"level": degree.level, "institution": degree.institution,
                                     "graduation_date": degree.graduation_date},
                          "registry_reference": degree.registry_reference}
            self.answered[document["request_id"]] = answer
            return 200, answer

    def answer_headers(self, status: int, request_nonce: str, payload: bytes) -> dict[str, str]:
        faults = self.faults
        if faults.unsigned_answers:
            return {}
        timestamp = str(int(time.time()) - faults.stale_answers_seconds)
        key = self.impostor_key if faults.forge_answers else self.registry_key
        key_id = "r-nobody" if faults.unknown_key_id else self.registry_key_id
        return {REGISTRY_KEY_ID: key_id, REGISTRY_TIMESTAMP: timestamp,
                REGISTRY_SIGNATURE: sign(key, response_message(status, request_nonce, timestamp, payload))}


def _handler(emulator: DegreeRegistryEmulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet in tests
            pass

        def _send(self, status: int, answer: dict, headers: dict[str, str]) -> None:
            payload = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout fault)
                self.close_connection = True

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": {"code": "invalid_request", "message": "body too large"}}, {})
                return
            body = self.rfile.read(length)
            faults = emulator.faults
            with emulator.lock:
                emulator.received_bodies.append(body)
                delay = faults.delay_seconds if faults.delay_requests > 0 else 0.0
                faults.delay_requests = max(0, faults.delay_requests - 1)
                failing, dropping = faults.fail_requests > 0, faults.drop_requests > 0
                faults.fail_requests = max(0, faults.fail_requests - 1)
                faults.drop_requests = max(0, faults.drop_requests - 1)
            record = {"path": self.path, "key_id": self.headers.get(HEADER_KEY_ID)}
            if dropping:
                record["status"] = 0
                emulator.requests.append(record)
                self.close_connection = True
                # the socket closes with no answer: a transport error at the client
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if delay:
                time.sleep(delay)
            nonce = self.headers.get(HEADER_NONCE) or ""
            if failing:  # as a load balancer answers when the registry behind it is down: not signed
                status, answer, headers = 503, {"error": {"code": "unavailable", "message": "try later"}}, {}
            elif self.path != LOOKUP_PATH:
                status, answer = 404, {"error": {"code": "not_found", "message": f"no {self.path}"}}
                headers = None
            else:
                refusal = emulator.check_request("POST", self.path, self.headers, body, time.time())
                if refusal:
                    status, answer = refusal[0], {"error": {"code": refusal[1], "message": refusal[2]}}
                else:
                    try:
                        document = json.loads(body)
                    except (ValueError, UnicodeDecodeError):
                        document = None
                    status, answer = emulator.look_up(document)
                    record["request_id"] = answer.get("request_id")
                headers = None
            if headers is None:
                payload = json.dumps(answer, ensure_ascii=False).encode()
                headers = emulator.answer_headers(status, nonce, payload)
            record["status"] = status
            emulator.requests.append(record)
            self._send(status, answer, headers)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Degree registry emulator (tests and staging only)")
    parser.add_argument("--keys", required=True, help="writes Credence's side of the secrets directory here")
    parser.add_argument("--port", type=int, default=8766, help="0: any free port (the printed URL names it)")
    parser.add_argument("--record", action="append", default=[],
                        help="a degree it knows: CERTIFICATE_NUMBER,HOLDER_NAME,RESIDENT_ID_NUMBER (repeatable)")
    args = parser.parse_args()
    credence_key = ed25519.Ed25519PrivateKey.generate()
    emulator = DegreeRegistryEmulator({"c1": credence_key.public_key()}, port=args.port)
    write_credence_keys(args.keys, {"c1": credence_key}, {emulator.registry_key_id: emulator.registry_key})
    for record in args.record:
        number, name, resident_id = record.split(",")
        emulator.add(number, name, resident_id)
    print(f"Degree registry emulator on {emulator.base_url}; DEGREE_REGISTRY=http "
          f"DEGREE_REGISTRY_URL={emulator.base_url} DEGREE_REGISTRY_SECRETS_DIR={args.keys} "
          f"DEGREE_REGISTRY_KEY_ID=c1", flush=True)
    try:
        emulator.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.server.server_close()


if __name__ == "__main__":
    main()
