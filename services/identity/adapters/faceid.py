"""Tencent Cloud FaceID (腾讯云人脸核身, API 2018-03-01) as the identity verifier ``tencent_faceid``, through the
vendor's SDK (``tencentcloud-sdk-python-faceid``'s ``FaceidClient``):

- ``IdCardVerification``: the name and resident ID number against the national registry (实名核验);
- ``DetectAuth``: opens an H5 liveness session for that name and number (RuleId, IdCard, Name, RedirectUrl) and
  answers the page to open (``Url``) and the session's ``BizToken``;
- ``GetDetectInfoEnhanced`` (InfoType ``1``: the text result only, never photos or video): the session's
  result, liveness and the face compared with the registry's photo.

Every request is signed TC3-HMAC-SHA256 by the SDK; the primitives below are the documented scheme, written out
so that the emulator (services/identity/adapters/faceid_emulator.py) verifies exactly what Tencent Cloud does and
the unit tests check both against the documented example.

Outages never become verdicts: a timeout, a transport error, a 5xx, ``InternalError``, ``RequestLimitExceeded``
or an authentication failure raises ``VerifierUnavailable``. The reads (``IdCardVerification``,
``GetDetectInfoEnhanced``) are retried with backoff; ``DetectAuth`` is not (a repeat would open a second session).
A circuit breaker (pybreaker) around every call makes an outage fail fast after ``breaker_failures`` failures in
a row, for ``breaker_reset_seconds``; each call is counted in ``credence_identity_verifier_calls_total``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import eventlet
import pybreaker
from prometheus_client import Counter, Gauge
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.faceid.v20180301 import faceid_client, models

from credence_common.security.secret_files import ReloadingSecrets
from services.identity.adapters.tencent_cloud import ca_bundle

log = logging.getLogger(__name__)

NAME = "tencent_faceid"
SERVICE = "faceid"
API_VERSION = "2018-03-01"
ALGORITHM = "TC3-HMAC-SHA256"
DEFAULT_ENDPOINT = "https://faceid.tencentcloudapi.com"
SECRET_ID_FILE, SECRET_KEY_FILE = "secret_id", "secret_key"
# Tencent Cloud refuses a request signed more than five minutes from its clock (AuthFailure.SignatureExpire).
TIMESTAMP_WINDOW_SECONDS = 300
# A BizToken's result can be fetched for three days after DetectAuth (GetDetectInfoEnhanced's documentation);
# the page itself stops taking a face after 7,200 s and the result then says so.
SESSION_RESULT_TTL_SECONDS = 3 * 24 * 3600
PASSING_SIMILARITY = 70.0  # DetectInfoText.Sim: 70 or more is the same person (documented, not configurable)

VERIFIER_CALLS = Counter(
    "credence_identity_verifier_calls_total",
    "Calls to the online identity verifier's vendor by action and outcome: ok (answered, whatever the verdict), "
    "refused (the vendor refused the request itself), unavailable (timeout, transport error, 5xx, InternalError, "
    "rate limit or authentication failure) or breaker_open (not attempted: the circuit breaker is open).",
    ["verifier", "action", "outcome"],
)
VERIFIER_BREAKER_OPEN = Gauge(
    "credence_identity_verifier_breaker_open",
    "1 while the online identity verifier's circuit breaker is open (calls fail fast), else 0.", ["verifier"])


# --- TC3-HMAC-SHA256, as Tencent Cloud documents it (签名方法 v3) ----------------------------------------------

def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def credential_date(timestamp: int) -> str:
    """The UTC date of ``X-TC-Timestamp`` (never local time: a UTC+8 clock signs the wrong day after 00:00)."""
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")


def canonical_request(method: str, uri: str, query: str, headers: list[tuple[str, str]], payload: bytes) -> str:
    """``METHOD\\nURI\\nQUERY\\nCanonicalHeaders\\nSignedHeaders\\nHashedPayload``: headers as (name, value),
    lower-cased, trimmed and sorted by name, each ``name:value\\n``."""
    pairs = sorted((name.strip().lower(), value.strip().lower()) for name, value in headers)
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in pairs)
    signed_headers = ";".join(name for name, _value in pairs)
    return f"{method.upper()}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{sha256_hex(payload)}"


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{int(timestamp)}\n{credential_date(timestamp)}/{service}/tc3_request\n{sha256_hex(canonical)}"


def signature(secret_key: str, timestamp: int, service: str, to_sign: str) -> str:
    secret_date = _hmac(("TC3" + secret_key).encode("utf-8"), credential_date(timestamp))
    secret_service = _hmac(secret_date, service)
    secret_signing = _hmac(secret_service, "tc3_request")
    return hmac.new(secret_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(secret_id: str, secret_key: str, service: str, timestamp: int, headers: list[tuple[str, str]],
                  payload: bytes, method: str = "POST", uri: str = "/", query: str = "") -> str:
    canonical = canonical_request(method, uri, query, headers, payload)
    signed_headers = ";".join(sorted(name.strip().lower() for name, _value in headers))
    value = signature(secret_key, timestamp, service, string_to_sign(timestamp, service, canonical))
    return (f"{ALGORITHM} Credential={secret_id}/{credential_date(timestamp)}/{service}/tc3_request, "
            f"SignedHeaders={signed_headers}, Signature={value}")


@dataclass(frozen=True)
class ParsedAuthorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> ParsedAuthorization | None:
    """``TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=a;b, Signature=<hex>``, or
    None when the header is not one."""
    if not value or not value.startswith(ALGORITHM + " "):
        return None
    fields = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        name, eq, text = part.strip().partition("=")
        if not eq:
            return None
        fields[name] = text
    scope = fields.get("Credential", "").split("/")
    signed = tuple(fields.get("SignedHeaders", "").split(";"))
    if len(scope) != 4 or scope[3] != "tc3_request" or not all(signed) or not fields.get("Signature"):
        return None
    return ParsedAuthorization(scope[0], scope[1], scope[2], signed, fields["Signature"])


# --- the secrets: two files in a directory, reread when they change ---------------------------------------

@dataclass(frozen=True)
class FaceIdSecrets:
    secret_id: str
    secret_key: str


def load_secrets(directory: str | os.PathLike) -> FaceIdSecrets:
    """``secret_id`` and ``secret_key`` (a CAM API key's two halves). Raises ``ValueError`` naming what is wrong,
    never the values."""
    base = Path(directory)
    try:
        secret_id = (base / SECRET_ID_FILE).read_text("utf-8").strip()
        secret_key = (base / SECRET_KEY_FILE).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Tencent Cloud FaceID secrets in {base}: {type(error).__name__} reading "
                         f"{SECRET_ID_FILE} / {SECRET_KEY_FILE}") from None
    if not secret_id or not secret_key:
        raise ValueError(f"Tencent Cloud FaceID secrets in {base}: {SECRET_ID_FILE} or {SECRET_KEY_FILE} is empty")
    if not secret_id.isascii() or not secret_key.isascii() or any(c.isspace() for c in secret_id + secret_key):
        raise ValueError(f"Tencent Cloud FaceID secrets in {base}: a value is not one line of ASCII")
    return FaceIdSecrets(secret_id, secret_key)


class SecretStore:
    """The API key in a secrets directory, reread when one of its files changes (a mounted Secret updated in
    place): rotating it needs no restart. A broken update keeps the last good key and is logged; a directory that
    cannot be read at start-up stops the start."""

    def __init__(self, directory: str | os.PathLike, check_interval_seconds: float = 5.0):
        self.directory = Path(directory)
        self._files = ReloadingSecrets(
            f"Tencent Cloud FaceID API key from {self.directory}",
            lambda: [self.directory / SECRET_ID_FILE, self.directory / SECRET_KEY_FILE],
            lambda: load_secrets(self.directory), lambda secrets: f"SecretId ending {secrets.secret_id[-4:]}",
            check_interval_seconds)

    def current(self, force: bool = False) -> FaceIdSecrets:
        return self._files.current(force)


# --- outcomes -------------------------------------------------------------------------------------------

class VerifierUnavailable(Exception):
    """The vendor could not give an answer (it may later): never a verdict about the candidate."""

    def __init__(self, code: str, action: str):
        super().__init__(f"{action}: {code}")
        self.code = code
        self.action = action


class VendorRefusal(Exception):
    """The vendor answered with an error about this request (an unknown or expired BizToken, a bad parameter):
    the vendor works, so the circuit breaker does not count it."""

    def __init__(self, code: str, action: str):
        super().__init__(f"{action}: {code}")
        self.code = code
        self.action = action


# Error codes that say the vendor cannot serve now (or cannot serve us: a key that does not sign, arrears);
# anything else is a refusal of the request itself.
UNAVAILABLE_PREFIXES = ("ClientNetworkError", "ServerNetworkError", "InternalError", "RequestLimitExceeded",
                        "FailedOperation.RequestLimitExceeded", "AuthFailure", "UnauthorizedOperation",
                        "ResourceUnavailable", "FailedOperation.UnKnown", "ClientError")
# of those, the ones a repeat of the same read may get past
RETRYABLE_PREFIXES = ("ClientNetworkError", "ServerNetworkError", "InternalError", "RequestLimitExceeded",
                      "FailedOperation.RequestLimitExceeded", "FailedOperation.UnKnown")


def is_unavailable(code: str) -> bool:
    return code.startswith(UNAVAILABLE_PREFIXES)


def is_retryable(code: str) -> bool:
    return code.startswith(RETRYABLE_PREFIXES)


@dataclass(frozen=True)
class IdCardCheck:
    """IdCardVerification's ``Result``: ``0`` the name and number match, ``-1`` they do not, ``-2`` / ``-3`` the
    number or name is not valid, ``-5`` the registry has no such number; ``-4`` (the registry's service failed)
    and anything else is raised as ``VerifierUnavailable`` instead."""

    result: str

    @property
    def matches(self) -> bool:
        return self.result == "0"

    @property
    def rejection(self) -> str | None:
        """The reason recorded as the candidate's rejection, or None when this is no verdict."""
        return {"-1": "registry_mismatch", "-5": "registry_no_record"}.get(self.result)


ID_CARD_VERDICTS = frozenset({"0", "-1", "-2", "-3", "-5"})


@dataclass(frozen=True)
class LivenessSession:
    url: str
    biz_token: str


@dataclass(frozen=True)
class SessionResult:
    """``kind``: approved, rejected (with ``reason``), pending (the candidate has not finished the page, or left
    it), inconclusive (the vendor's engine failed or the attempts ran out: no verdict, start a new session) or
    expired."""

    kind: str
    reason: str | None = None
    face_match_score: float | None = None
    vendor_code: int | None = None


# DetectInfoText.ErrCode (人脸核身 H5 返回码): the ones that are a verdict about the person
PENDING_CODES = frozenset({17})  # 本次流程未完成
EXPIRED_CODES = frozenset({15})  # Token 过期
REJECTION_CODES = {1002: "liveness_failed",  # 疑似非真人录制
                   2006: "registry_mismatch",  # 姓名和身份证号不匹配
                   2016: "face_mismatch"}  # 相似度未达到通过阈值


def interpret_result(text: dict | None, full_name: str, resident_id_number: str) -> SessionResult:
    """GetDetectInfoEnhanced's ``Text`` as our verdict. No ErrCode yet: the page was not finished."""
    text = text or {}
    code = text.get("ErrCode")
    if code is None or code in PENDING_CODES:
        return SessionResult("pending", vendor_code=code)
    if code in EXPIRED_CODES:
        return SessionResult("expired", vendor_code=code)
    if code in REJECTION_CODES:
        return SessionResult("rejected", REJECTION_CODES[code], _similarity(text.get("Sim")), code)
    if code != 0:
        return SessionResult("inconclusive", vendor_code=code)
    # the vendor checked the name and number we gave it; a result about anyone else is not about this candidate
    if (text.get("IdCard") not in (None, "", resident_id_number)) or (text.get("Name") not in (None, "", full_name)):
        return SessionResult("rejected", "document_mismatch", vendor_code=code)
    score = _similarity(text.get("Sim"))
    if text.get("LiveStatus") not in (None, 0):
        return SessionResult("rejected", "liveness_failed", score, code)
    if text.get("Comparestatus") not in (None, 0) or score is None or score * 100 < PASSING_SIMILARITY:
        return SessionResult("rejected", "face_mismatch", score, code)
    return SessionResult("approved", None, score, code)


def _similarity(value) -> float | None:
    """``Sim`` is a string of 0.00-100.00; we keep 0-1 like the other verifiers."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return round(score / 100, 4) if 0 <= score <= 100 else None


# --- the adapter ----------------------------------------------------------------------------------------

def parse_endpoint(value: str | None) -> tuple[str, str]:
    """``https://faceid.tencentcloudapi.com`` (or a bare host) -> (scheme, host[:port])."""
    text = (value or DEFAULT_ENDPOINT).strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"FACEID_ENDPOINT must be a scheme and host such as {DEFAULT_ENDPOINT}, not {value!r}")
    return parts.scheme, parts.netloc


class _Listener(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state):
        name = getattr(new_state, "name", str(new_state))
        VERIFIER_BREAKER_OPEN.labels(NAME).set(1 if name == pybreaker.STATE_OPEN else 0)
        if name == pybreaker.STATE_OPEN:
            log.warning("Tencent Cloud FaceID circuit breaker opened after %s failures: online identity "
                        "confirmation answers 503 identity_verifier_unavailable for %s s", cb.fail_max,
                        cb.reset_timeout)
        elif name == pybreaker.STATE_CLOSED:
            log.info("Tencent Cloud FaceID circuit breaker closed: the vendor answers again")


class TencentFaceIdVerifier:
    """Offers liveness sessions (``supports_sessions``) instead of ``verify`` with evidence references."""

    name = NAME
    supports_sessions = True

    def __init__(self, secrets: SecretStore, rule_id: str, redirect_url: str, endpoint: str = DEFAULT_ENDPOINT,
                 region: str = "", timeout_seconds: float = 5.0, retries: int = 2, backoff_seconds: float = 0.2,
                 breaker_failures: int = 5, breaker_reset_seconds: float = 30.0, max_sessions_per_day: int = 5,
                 sleep: Callable[[float], None] = eventlet.sleep):
        self.secrets = secrets
        self.rule_id = rule_id
        self.redirect_url = redirect_url
        self.scheme, self.host = parse_endpoint(endpoint)
        self.region = region
        self.timeout_seconds = timeout_seconds
        self.retries = max(0, int(retries))
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.max_sessions_per_day = max(1, int(max_sessions_per_day))  # each session is billed
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=max(1, int(breaker_failures)), reset_timeout=breaker_reset_seconds,
            exclude=[VendorRefusal], listeners=[_Listener()], name=NAME,
            throw_new_error_on_trip=False)  # the call that trips it fails as itself (counted unavailable)
        VERIFIER_BREAKER_OPEN.labels(NAME).set(0)
        self._client_lock = threading.Lock()
        self._client: tuple[FaceIdSecrets, faceid_client.FaceidClient] | None = None

    # --- the SDK's client, rebuilt when the key changes ---------------------------------------------------

    def client(self, force_reload: bool = False) -> faceid_client.FaceidClient:
        secrets = self.secrets.current(force=force_reload)
        with self._client_lock:
            if self._client is None or self._client[0] != secrets:
                http = HttpProfile(protocol=self.scheme, endpoint=self.host, reqTimeout=self.timeout_seconds,
                                   certification=ca_bundle())
                profile = ClientProfile(httpProfile=http, language="en-US")
                client = faceid_client.FaceidClient(credential.Credential(secrets.secret_id, secrets.secret_key),
                                                    self.region, profile)
                self._client = (secrets, client)
            return self._client[1]

    def _attempt(self, action: str, request) -> dict:
        """One signed request; its answer's ``Response`` as a dict."""
        try:
            try:
                answer = getattr(self.client(), action)(request)
            except TencentCloudSDKException as error:
                if not str(error.code or "").startswith(("AuthFailure.Signature", "AuthFailure.SecretIdNotFound")):
                    raise
                # our key may have been rotated (or the old one disabled) at Tencent Cloud a moment before the file
                # here changed: reread the directory now (not in 5 s) and sign once more with what it holds
                answer = getattr(self.client(force_reload=True), action)(request)
        except (ValueError, KeyError, TypeError, OSError) as error:
            # not an answer of the API at all (an HTML error page of a proxy, a cut connection the SDK let through)
            log.warning("Tencent Cloud FaceID %s: no usable answer (%s)", action, type(error).__name__)
            raise VerifierUnavailable("InvalidAnswer", action) from None
        except TencentCloudSDKException as error:
            code = str(error.code or "ClientError")
            # the code and request id only: a vendor's message may echo what was sent
            log.warning("Tencent Cloud FaceID %s failed: %s (RequestId %s)", action, code,
                        getattr(error, "requestId", None) or "-")
            if is_unavailable(code):
                raise VerifierUnavailable(code, action) from None
            raise VendorRefusal(code, action) from None
        return json.loads(answer.to_json_string())

    def _call(self, action: str, request, retry: bool) -> dict:
        def attempts():
            for attempt in range(self.retries + 1 if retry else 1):
                try:
                    return self._attempt(action, request)
                except VerifierUnavailable as error:
                    if attempt >= (self.retries if retry else 0) or not is_retryable(error.code):
                        raise
                    self.sleep(self.backoff_seconds * (2 ** attempt))  # 0.2 s, 0.4 s, ...

        try:
            # calling(), not call(): call() holds the breaker's lock through the whole exchange, so under eventlet
            # every candidate's call would wait for the one before it; calling() locks only to decide and to count
            with self.breaker.calling():
                answer = attempts()
        except pybreaker.CircuitBreakerError:
            VERIFIER_CALLS.labels(NAME, action, "breaker_open").inc()
            raise VerifierUnavailable("BreakerOpen", action) from None
        except VerifierUnavailable:
            VERIFIER_CALLS.labels(NAME, action, "unavailable").inc()
            raise
        except VendorRefusal:
            VERIFIER_CALLS.labels(NAME, action, "refused").inc()
            raise
        VERIFIER_CALLS.labels(NAME, action, "ok").inc()
        return answer

    def _answer_or_unavailable(self, action: str, request, retry: bool) -> dict:
        """For the calls made about the candidate's own registration (the registry check, opening a session), a
        refusal is not about anything the candidate sent: it is our configuration (an unknown RuleId, a CAM key
        not allowed FaceID) or the vendor's. The candidate is told what an outage tells them (503: later, or on
        site); the operator finds the code in an error line."""
        try:
            return self._call(action, request, retry)
        except VendorRefusal as refused:
            log.error("Tencent Cloud FaceID refused %s with %s: check FACEID_RULE_ID and the CAM key's policy",
                      action, refused.code)
            raise VerifierUnavailable(refused.code, action) from None

    # --- the three actions --------------------------------------------------------------------------------

    def check_id_card(self, full_name: str, resident_id_number: str) -> IdCardCheck:
        request = models.IdCardVerificationRequest()
        request.IdCard, request.Name = resident_id_number, full_name
        result = str(self._answer_or_unavailable("IdCardVerification", request, retry=True).get("Result"))
        if result not in ID_CARD_VERDICTS:
            # -4: the registry's own service failed; anything undocumented is no verdict either
            log.warning("Tencent Cloud FaceID IdCardVerification answered Result %s: no verdict", result[:8])
            raise VerifierUnavailable(f"IdCardVerification.Result{result[:8]}", "IdCardVerification")
        return IdCardCheck(result)

    def start_session(self, full_name: str, resident_id_number: str, extra: str) -> LivenessSession:
        """Not retried: a repeat would open a second session (the candidate asks again instead)."""
        request = models.DetectAuthRequest()
        request.RuleId, request.IdCard, request.Name = self.rule_id, resident_id_number, full_name
        request.RedirectUrl, request.Extra = self.redirect_url, extra
        answer = self._answer_or_unavailable("DetectAuth", request, retry=False)
        url, token = answer.get("Url"), answer.get("BizToken")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or not isinstance(token, str) \
                or not 0 < len(token) <= 128:
            raise VerifierUnavailable("DetectAuth.InvalidAnswer", "DetectAuth")
        return LivenessSession(url, token)

    def session_result(self, biz_token: str, full_name: str, resident_id_number: str) -> SessionResult:
        request = models.GetDetectInfoEnhancedRequest()
        request.BizToken, request.RuleId, request.InfoType = biz_token, self.rule_id, "1"
        try:
            answer = self._call("GetDetectInfoEnhanced", request, retry=True)
        except VendorRefusal as refusal:
            if refusal.code == "InvalidParameterValue.BizTokenExpired":
                return SessionResult("expired")
            raise VerifierUnavailable(refusal.code, refusal.action) from None
        return interpret_result(answer.get("Text"), full_name, resident_id_number)


def from_config(config: dict, production: bool) -> TencentFaceIdVerifier:
    """``IDENTITY_VERIFIER=tencent_faceid``: the key is two files in FACEID_SECRETS_DIR (docs/operations.md,
    "Tencent Cloud FaceID"), reread when they change, so rotating it needs no restart."""
    secrets_dir = str(config.get("FACEID_SECRETS_DIR") or "")
    if not secrets_dir:
        raise ValueError("IDENTITY_VERIFIER=tencent_faceid needs FACEID_SECRETS_DIR (a directory holding secret_id "
                         "and secret_key)")
    rule_id = str(config.get("FACEID_RULE_ID") or "").strip()
    if not rule_id.isdigit():  # the console's RuleIds are numbers: a placeholder left in is caught at start-up
        raise ValueError("IDENTITY_VERIFIER=tencent_faceid needs FACEID_RULE_ID (the business flow's RuleId, "
                         "a number from the FaceID console)")
    redirect_url = str(config.get("FACEID_REDIRECT_URL") or "")
    if not redirect_url.startswith("https://") and production:
        raise ValueError("FACEID_REDIRECT_URL must be the https:// page candidates come back to after the check")
    endpoint = str(config.get("FACEID_ENDPOINT") or DEFAULT_ENDPOINT)
    scheme, _host = parse_endpoint(endpoint)
    if scheme != "https" and production:
        raise ValueError("FACEID_ENDPOINT must be https:// in production (an emulator is for tests and staging)")
    return TencentFaceIdVerifier(
        SecretStore(secrets_dir, float(config.get("FACEID_KEY_CHECK_SECONDS", 5))), rule_id, redirect_url,
        endpoint, str(config.get("FACEID_REGION") or ""), float(config.get("FACEID_TIMEOUT_SECONDS", 5)),
        int(config.get("FACEID_RETRIES", 2)), float(config.get("FACEID_RETRY_BACKOFF_SECONDS", 0.2)),
        int(config.get("FACEID_BREAKER_FAILURES", 5)), float(config.get("FACEID_BREAKER_RESET_SECONDS", 30)),
        int(config.get("FACEID_MAX_SESSIONS_PER_DAY", 5)))
