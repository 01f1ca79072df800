"""Tencent Cloud SMS (腾讯云短信, API 3.0, version 2021-01-11) as the step of the SMS queue that delivers one text
(``SMS_ADAPTER=tencent_sms``; the queue, its claims and retries are services/identity/adapters/sms.py's, shared with the
webhook adapter).

Tencent sends only templates it has approved, each under an approved signature (签名): no free text. So every
purpose Credence texts for (``CodePurpose``: registration, password reset, ticket look-up, sign-in) is mapped to a
TemplateId (``SMS_TENCENT_TEMPLATES``) and a sign name (``SMS_TENCENT_SIGN_NAME``, or per purpose
``SMS_TENCENT_SIGN_NAMES``), and the queue keeps each text's purpose and template values. Every template takes
two values: ``{1}`` the code, ``{2}`` its validity in minutes. A purpose without a template refuses the start: a
text that could never be sent must not be promised to a candidate.

The client is Tencent's maintained SDK (``tencentcloud-sdk-python-sms``, ``SmsClient.SendSms`` and
``PullSmsSendStatus``), which signs each request TC3-HMAC-SHA256. Its credential is our ``TencentSecrets``: the SDK
asks it for the key pair before every request, and it rereads the secrets directory when a file there changes, so
the API key rotates without a restart.

Outcomes, per number (``SendStatusSet[].Code``) or for the whole request (``Error.Code``): ``Ok`` is sent (its
SerialNo kept for the receipt); rate limits, Tencent's internal errors, authentication failures (a key being
rotated), 5xx and transport errors are retried with the queue's backoff until ``GIVE_UP_AFTER``; a refusal that
asking again cannot change (a number that is not a mobile, a template or signature not approved) fails the text
at once. Outage-like failures also count towards a circuit breaker (pybreaker): once open, texts wait in the queue
untouched instead of hammering Tencent, and one trial request after ``SMS_TENCENT_BREAKER_RESET_SECONDS`` closes
it again.

Delivery receipts are *pulled* (``PullSmsSendStatus``), not pushed to a callback: Tencent's SMS status callback is
not signed, so a push route would have to be public yet authenticated by something Tencent cannot give us (a
secret in the URL at best), and it would need a route through the gateway; pulling needs no inbound route at
all, works behind the same egress as sending and shares its key, breaker and rotation. Pulling is a queue at
Tencent (each receipt is handed out once, to whichever replica pulls it), so receipts are stored by SerialNo in
``sms_receipts`` whichever replica sent the text. (Tencent enables the pull API for an SdkAppId on request.)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

import pybreaker
from prometheus_client import Gauge
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client import SmsClient

from credence_common.config import is_production
from credence_common.contracts.identity import CodePurpose
from credence_common.security.masking import mask_mobile
from credence_common.security.secret_files import ReloadingSecrets
from services.identity.adapters.sms import Delivery
from services.identity.adapters.tencent_cloud import ca_bundle

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
DEFAULT_REGION = "ap-guangzhou"
API_VERSION = "2021-01-11"
SECRET_ID_FILE, SECRET_KEY_FILE = "SMS_TENCENT_SECRET_ID", "SMS_TENCENT_SECRET_KEY"
PURPOSES: tuple[str, ...] = get_args(CodePurpose)  # every purpose a code is texted for
RECEIPT_PAGE = 100  # PullSmsSendStatus's documented maximum Limit

BREAKER_OPEN = Gauge("credence_sms_breaker_open", "1 while the SMS vendor's circuit breaker is open (texts wait).",
                     ["adapter"])

# Codes after which asking again later may help. Anything not known as permanent is retried too: a text the
# vendor might still take is never dropped before GIVE_UP_AFTER.
RETRY_PREFIXES = ("InternalError", "RequestLimitExceeded", "LimitExceeded", "AuthFailure", "ResourceUnavailable",
                  "ResourceInsufficient", "ClientNetworkError", "ServerNetworkError",
                  "FailedOperation.InsufficientBalanceInSmsPackage",
                  "UnauthorizedOperation.ServiceSuspendDueToArrears")
PERMANENT_PREFIXES = ("InvalidParameterValue", "InvalidParameter", "FailedOperation", "UnsupportedOperation",
                      "MissingParameter", "UnauthorizedOperation")
# Failures of Tencent itself or of our access to it (not of one text): these open the circuit breaker.
OUTAGE_PREFIXES = ("InternalError", "RequestLimitExceeded", "AuthFailure", "ResourceUnavailable",
                   "ClientNetworkError", "ServerNetworkError")


def _matches(code: str, prefixes: tuple[str, ...]) -> bool:
    return any(code == p or code.startswith(p + ".") for p in prefixes)


def classify(code: str) -> str:
    """``sent``, ``retry`` or ``failed`` for a Tencent Cloud SMS result code."""
    if code == "Ok":
        return "sent"
    if _matches(code, RETRY_PREFIXES):
        return "retry"
    if _matches(code, PERMANENT_PREFIXES):
        return "failed"
    return "retry"


def is_outage(code: str) -> bool:
    return _matches(code, OUTAGE_PREFIXES)


# --- configuration ------------------------------------------------------------------------------------

def parse_pairs(spec: str | None, setting: str) -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}``; a malformed pair refuses the start naming the setting."""
    pairs = {}
    for part in str(spec or "").split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ValueError(f"{setting}: {part.strip()!r} is not purpose=value")
        pairs[name.strip()] = value.strip()
    return pairs


@dataclass(frozen=True)
class Template:
    template_id: str
    sign_name: str


def templates_from_config(templates: str | None, sign_name: str | None,
                          sign_names: str | None = None) -> dict[str, Template]:
    """Every purpose's template and signature, or ``ValueError`` naming each purpose without one (and any name
    that is not a purpose: a typo would otherwise leave the real purpose unmapped)."""
    ids = parse_pairs(templates, "SMS_TENCENT_TEMPLATES")
    signs = parse_pairs(sign_names, "SMS_TENCENT_SIGN_NAMES")
    problems = []
    for setting, names in (("SMS_TENCENT_TEMPLATES", ids), ("SMS_TENCENT_SIGN_NAMES", signs)):
        unknown = sorted(set(names) - set(PURPOSES))
        if unknown:
            problems.append(f"{setting} names {', '.join(unknown)}, which Credence never texts for "
                            f"(purposes: {', '.join(PURPOSES)})")
    missing = [p for p in PURPOSES if p not in ids]
    if missing:
        problems.append(f"SMS_TENCENT_TEMPLATES has no approved template for {', '.join(missing)}: every purpose "
                        "Credence texts for needs one (purpose=TemplateId)")
    bad_ids = sorted(p for p, t in ids.items() if not t.isdigit())
    if bad_ids:
        problems.append(f"SMS_TENCENT_TEMPLATES: the TemplateId of {', '.join(bad_ids)} is not a number")
    unsigned = [p for p in PURPOSES if not (signs.get(p) or str(sign_name or "").strip())]
    if unsigned:
        problems.append(f"no sign name for {', '.join(unsigned)}: set SMS_TENCENT_SIGN_NAME (or "
                        "SMS_TENCENT_SIGN_NAMES per purpose)")
    if problems:
        raise ValueError("SMS_ADAPTER=tencent_sms: " + "; ".join(problems))
    return {p: Template(ids[p], signs.get(p) or str(sign_name).strip()) for p in PURPOSES}


def endpoint_from_config(value: str | None, production: bool) -> tuple[str, str]:
    """(scheme, host[:port]) of ``SMS_TENCENT_ENDPOINT``: a bare host is https; ``http://`` is for the emulator
    and refused in production, where the key and the codes would cross the network in clear."""
    value = str(value or DEFAULT_ENDPOINT).strip()
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"SMS_TENCENT_ENDPOINT {value!r} is not a host (or http(s)://host[:port])")
    if production and parts.scheme != "https":
        raise ValueError("SMS_TENCENT_ENDPOINT must be https in production")
    return parts.scheme, parts.netloc


# --- the API key: from a secrets directory, reread when it changes ------------------------------------

def load_secrets(directory: str | os.PathLike) -> tuple[str, str]:
    base = Path(directory)
    values = []
    for name in (SECRET_ID_FILE, SECRET_KEY_FILE):
        try:
            values.append((name, (base / name).read_text("utf-8").strip()))
        except (OSError, UnicodeDecodeError) as error:  # the error names the file, never its content
            raise ValueError(f"Tencent Cloud SMS secrets in {base}: {name} cannot be read "
                             f"({type(error).__name__})") from None
    (_, secret_id), (_, secret_key) = values
    for name, value in values:
        if not value or any(c.isspace() for c in value) or "dev-insecure-" in value:
            raise ValueError(f"Tencent Cloud SMS secrets in {base}: {name} is empty, holds spaces or a "
                             "development default")
    return secret_id, secret_key


class TencentSecrets:
    """The SDK's credential (``get_credential_info``), read from ``SMS_TENCENT_SECRET_ID`` and
    ``SMS_TENCENT_SECRET_KEY`` in a directory (a mounted Secret) and reread when either file changes: a key
    rotated in the Secret is used from the next request, with no restart. (The rereading is
    credence_common/security/secret_files.py, shared with every other key store.) A broken update keeps
    the last good pair and is logged, so a half-written file never stops texts."""

    def __init__(self, directory: str | os.PathLike, check_interval_seconds: float = 5.0):
        self.directory = Path(directory)
        self._files = ReloadingSecrets(
            f"Tencent Cloud SMS API key from {self.directory}",
            lambda: [self.directory / SECRET_ID_FILE, self.directory / SECRET_KEY_FILE],
            lambda: load_secrets(self.directory), lambda pair: f"SecretId ending {pair[0][-4:]}",
            check_interval_seconds)

    def pair(self) -> tuple[str, str]:
        return self._files.current()

    def get_credential_info(self):  # the SDK's credential interface: (secret id, secret key, token)
        secret_id, secret_key = self.pair()
        return secret_id, secret_key, None


# --- the adapter --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Receipt:
    serial_no: str
    status: str  # delivered | failed
    description: str
    received_at: datetime | None


class VendorUnavailable(Exception):
    """Tencent did not answer, answered 5xx, or failed as a whole (InternalError, RequestLimitExceeded,
    AuthFailure): counted by the circuit breaker."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class _BreakerWatch(pybreaker.CircuitBreakerListener):
    def __init__(self, delivery: TencentSmsDelivery):
        self.delivery = delivery

    def state_change(self, cb, old_state, new_state):
        opened = new_state is not None and new_state.name == pybreaker.STATE_OPEN
        if opened:
            self.delivery.opened_at = time.monotonic()
            log.error("Tencent Cloud SMS circuit breaker opened after %d failures: texts wait in the queue for %s s",
                      cb.fail_max, cb.reset_timeout)
        elif old_state is not None and old_state.name != pybreaker.STATE_CLOSED and \
                new_state.name == pybreaker.STATE_CLOSED:
            log.info("Tencent Cloud SMS circuit breaker closed: sending again")
        BREAKER_OPEN.labels("tencent_sms").set(1 if opened else 0)


class TencentSmsDelivery:
    """Delivers one queued text with ``SendSms`` and pulls receipts with ``PullSmsSendStatus``."""

    name = "tencent_sms"

    def __init__(self, secrets: TencentSecrets, sdk_app_id: str, templates: dict[str, Template],
                 endpoint: str = DEFAULT_ENDPOINT, scheme: str = "https", region: str = DEFAULT_REGION,
                 timeout_seconds: float = 5.0, breaker_failures: int = 5, breaker_reset_seconds: float = 30.0):
        self.secrets = secrets
        self.sdk_app_id = sdk_app_id
        self.templates = templates
        profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=endpoint,
                                                        reqTimeout=timeout_seconds, certification=ca_bundle()))
        # the SDK's own region breaker stays off (its default): ours decides, and it never switches endpoints
        self.client = SmsClient(secrets, region, profile)
        self.opened_at = 0.0
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=breaker_failures, reset_timeout=breaker_reset_seconds, throw_new_error_on_trip=False,
            exclude=[lambda error: not isinstance(error, VendorUnavailable)], listeners=[_BreakerWatch(self)],
            name="tencent_sms")
        BREAKER_OPEN.labels(self.name).set(0)

    def paused(self) -> bool:
        """True while the breaker is open and its reset timeout has not run out: nothing is sent or claimed."""
        return (self.breaker.current_state == pybreaker.STATE_OPEN
                and time.monotonic() - self.opened_at < self.breaker.reset_timeout)

    def wait_seconds(self) -> float:
        return max(0.0, self.breaker.reset_timeout - (time.monotonic() - self.opened_at))

    def _call(self, method, request):
        try:
            return method(request)
        except TencentCloudSDKException as error:
            code = str(error.get_code() or "ClientError")
            if is_outage(code):
                raise VendorUnavailable(code) from None
            return code

    def deliver(self, message_id: int, mobile: str, text: str | None, purpose: str | None,
                params: list[str] | None) -> Delivery:
        """One queued text, as its purpose's template with its values (``text`` is the rendered form, unused)."""
        template = self.templates.get(purpose or "")
        if template is None or params is None:
            # queued before SMS_ADAPTER became tencent_sms (webhook texts carry no template values): unsendable
            return Delivery("failed", error="NoTemplateForText")
        request = models.SendSmsRequest()
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = template.sign_name
        request.TemplateId = template.template_id
        request.TemplateParamSet = [str(p) for p in params]
        request.PhoneNumberSet = [f"+86{mobile}"]
        request.SessionContext = f"credence-sms-{message_id}"  # echoed in receipts; nothing personal
        try:
            # calling() locks the breaker only to decide and to count, never through the HTTP exchange
            with self.breaker.calling():
                answer = self._call(self.client.SendSms, request)
        except pybreaker.CircuitBreakerError:
            return Delivery("wait")
        except VendorUnavailable as error:
            log.warning("Tencent Cloud SMS unavailable (%s) for a text to %s; will retry", error.code,
                        mask_mobile(mobile))
            return Delivery("retry", error=error.code)
        if isinstance(answer, str):  # the request as a whole was refused
            code, serial_no = answer, None
        else:
            statuses = answer.SendStatusSet or []
            status = next((s for s in statuses if s.PhoneNumber == f"+86{mobile}"), statuses[0] if statuses else None)
            if status is None:
                return Delivery("retry", error="NoSendStatus")
            code, serial_no = str(status.Code or ""), status.SerialNo
        outcome = classify(code)
        if outcome == "sent":
            return Delivery("sent", serial_no=serial_no)
        if outcome == "failed":
            log.error("Tencent Cloud SMS refused a %s text to %s for good: %s", purpose, mask_mobile(mobile), code)
        else:
            log.warning("Tencent Cloud SMS deferred a %s text to %s (%s); will retry", purpose, mask_mobile(mobile),
                        code)
        return Delivery(outcome, error=code)

    def pull_receipts(self) -> list[Receipt]:
        """Up to a page of receipts Tencent has not handed out yet (each is handed out once)."""
        if self.paused():
            return []
        request = models.PullSmsSendStatusRequest()
        request.SmsSdkAppId = self.sdk_app_id
        request.Limit = RECEIPT_PAGE
        try:
            with self.breaker.calling():
                answer = self._call(self.client.PullSmsSendStatus, request)
        except pybreaker.CircuitBreakerError:
            return []
        except VendorUnavailable as error:
            log.warning("Tencent Cloud SMS unavailable (%s) for delivery receipts; will pull again", error.code)
            return []
        if isinstance(answer, str):
            log.error("Tencent Cloud SMS refused to hand out delivery receipts: %s", answer)
            return []
        receipts = []
        for item in answer.PullSmsSendStatusSet or []:
            if not item.SerialNo:
                continue
            when = (datetime.fromtimestamp(item.UserReceiveTime, UTC)
                    if isinstance(item.UserReceiveTime, int) and item.UserReceiveTime > 0 else None)
            receipts.append(Receipt(str(item.SerialNo)[:64],
                                    "delivered" if item.ReportStatus == "SUCCESS" else "failed",
                                    str(item.Description or "")[:100], when))
        return receipts


def from_config(config: dict) -> TencentSmsDelivery:
    """The adapter as configured, or ``ValueError`` naming what is missing or wrong: every problem is found at
    start-up, none at send time."""
    templates = templates_from_config(config.get("SMS_TENCENT_TEMPLATES"), config.get("SMS_TENCENT_SIGN_NAME"),
                                      config.get("SMS_TENCENT_SIGN_NAMES"))
    app_id = str(config.get("SMS_TENCENT_SDK_APP_ID") or "").strip()
    if not app_id.isdigit():
        raise ValueError("SMS_ADAPTER=tencent_sms: SMS_TENCENT_SDK_APP_ID must be the SmsSdkAppId (digits, e.g. "
                         "1400006666)")
    directory = str(config.get("SMS_TENCENT_SECRETS_DIR") or "").strip()
    if not directory:
        raise ValueError("SMS_ADAPTER=tencent_sms: SMS_TENCENT_SECRETS_DIR must name the directory holding "
                         f"{SECRET_ID_FILE} and {SECRET_KEY_FILE}")
    scheme, endpoint = endpoint_from_config(config.get("SMS_TENCENT_ENDPOINT"), is_production())
    secrets = TencentSecrets(directory, float(config.get("SMS_TENCENT_KEY_CHECK_SECONDS", 5)))
    return TencentSmsDelivery(
        secrets, app_id, templates, endpoint, scheme, str(config.get("SMS_TENCENT_REGION") or DEFAULT_REGION),
        float(config.get("SMS_TENCENT_TIMEOUT_SECONDS", 5)), int(config.get("SMS_TENCENT_BREAKER_FAILURES", 5)),
        float(config.get("SMS_TENCENT_BREAKER_RESET_SECONDS", 30)))
