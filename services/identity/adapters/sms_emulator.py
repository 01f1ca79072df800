"""A local emulator of Tencent Cloud SMS (API 3.0, version 2021-01-11: ``SendSms`` and ``PullSmsSendStatus``), for
tests and staging (Tencent's servers are not reachable from here, and must never receive test texts).

It is Tencent's side: it verifies each request's ``TC3-HMAC-SHA256`` Authorization as Tencent Cloud documents it
(canonical request over method, ``/``, query, the signed headers lowercased and the SHA-256 of the body; string to
sign with the request timestamp and the ``date/sms/tc3_request`` scope; the key derived ``TC3``+SecretKey → date →
service → ``tc3_request``), computed here independently of the SDK that signs; it refuses a timestamp more than
five minutes from its clock, answers in API 3.0's ``{"Response": {..., "RequestId"}}`` shape (errors as
``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``, HTTP 200 as Tencent does), checks the SdkAppId, the
sign name and the template id (and its number of values) against what it was told is approved, records every text
it accepts (``sent``) and queues a receipt for each, handed out once by ``PullSmsSendStatus``.

Fault switches (``faults``), for the failures our side must survive: a signature it refuses, a clock that makes our
timestamp stale, requests left unanswered (a timeout; the text is not taken), 5xx, ``InternalError`` and
``RequestLimitExceeded`` for the whole request, per-number codes (``LimitExceeded.PhoneNumberDailyLimit``,
``InvalidParameterValue.IncorrectPhoneNumber``, ...), and receipts that say delivered, failed or nothing.

Run it alone for staging: ``python -m services.identity.adapters.sms_emulator --secrets DIR --port 8766`` writes a
secrets directory with a generated key pair and prints the settings to point identity at it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets as random_secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from credence_common.emulation import EmulatedVendor

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "sms"
VERSION = "2021-01-11"
TOLERANCE_SECONDS = 300  # "Timestamp and server time cannot differ by more than five minutes"
MAINLAND_MOBILE = re.compile(r"\+861\d{10}")
SECRET_ID_FILE, SECRET_KEY_FILE = "SMS_TENCENT_SECRET_ID", "SMS_TENCENT_SECRET_KEY"


# --- TC3-HMAC-SHA256, as documented -------------------------------------------------------------------

def canonical_request(method: str, uri: str, query: str, headers: dict[str, str], signed_headers: list[str],
                      payload: bytes) -> str:
    """``METHOD\\nURI\\nQUERY\\nname:value\\n...\\nsigned;headers\\nhex(sha256(payload))``: each signed header's
    name and value lowercased and trimmed, in the order SignedHeaders gives (ASCII order by name)."""
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers)
    return "\n".join((method.upper(), uri, query, canonical_headers, ";".join(signed_headers),
                      hashlib.sha256(payload).hexdigest()))


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    return "\n".join((ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()))


def tc3_signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    def step(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

    signing_key = step(step(step(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_authorization(value: str | None) -> dict[str, str] | None:
    """``TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=a;b, Signature=<hex>``."""
    if not value or not value.startswith(ALGORITHM + " "):
        return None
    fields = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        name, eq, item = part.strip().partition("=")
        if not eq:
            return None
        fields[name] = item
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 4 or credential[3] != "tc3_request" or not fields.get("SignedHeaders") \
            or not fields.get("Signature"):
        return None
    return {"secret_id": credential[0], "date": credential[1], "service": credential[2],
            "signed_headers": fields["SignedHeaders"], "signature": fields["Signature"]}


# --- the emulator -------------------------------------------------------------------------------------

@dataclass
class Faults:
    """What the emulator gets wrong on purpose. Counters count down once per API request."""

    bad_signature: bool = False  # every signature is refused (AuthFailure.SignatureFailure)
    clock_skew_seconds: int = 0  # the emulator's clock runs this far ahead: past 300 s, AuthFailure.SignatureExpire
    delay_requests: int = 0  # the next n requests wait delay_seconds and are then dropped unprocessed (a timeout)
    delay_seconds: float = 0.0
    outage: bool = False  # every request answers 503 (no JSON), until switched off
    fail_requests: int = 0  # the next n requests answer 500 (no JSON)
    internal_errors: int = 0  # the next n requests fail as a whole with InternalError.OtherError
    request_limits: int = 0  # the next n requests fail as a whole with RequestLimitExceeded
    number_codes: dict[str, list[str]] = field(default_factory=dict)  # +86… -> the codes its next sends get
    receipt_status: str | None = "SUCCESS"  # each accepted text's receipt: SUCCESS, FAIL, or None (no receipt)


@dataclass
class SentSms:
    serial_no: str
    phone: str
    sdk_app_id: str
    template_id: str
    sign_name: str
    params: list[str]
    session_context: str
    secret_id: str  # the API key that signed the request
    at: float


class TencentSmsEmulator(EmulatedVendor):
    thread_name = "tencent-sms-emulator"

    def __init__(self, secrets: dict[str, str], sdk_app_id: str = "1400006666", sign_names=("Credence",),
                 templates: dict[str, int] | None = None, host: str = "127.0.0.1", port: int = 0):
        self.secrets = dict(secrets)  # SecretId -> SecretKey: every key Tencent accepts now (two while rotating)
        self.sdk_app_id = sdk_app_id
        self.sign_names = set(sign_names)  # approved signatures
        self.templates = dict(templates or {})  # approved TemplateId -> how many values it takes
        self.faults = Faults()
        self.sent: list[SentSms] = []
        self.receipts: list[dict] = []  # waiting to be pulled, each once
        self.requests: list[tuple[str, str]] = []  # (action, "Ok" or the error code / HTTP status) as answered
        self.lock = threading.RLock()
        self._listen(_handler(self), host, port)

    @property
    def endpoint(self) -> str:
        """What SMS_TENCENT_ENDPOINT is given."""
        return self.base_url

    def approve_template(self, template_id: str, values: int = 2) -> None:
        self.templates[str(template_id)] = values

    def sent_to(self, phone: str) -> list[SentSms]:
        with self.lock:
            return [s for s in self.sent if s.phone == phone]

    def count(self, action: str | None = None, code: str | None = None) -> int:
        """Requests answered, of one action (None: any) and with one code (None: any)."""
        with self.lock:
            return sum(1 for a, c in self.requests if action in (None, a) and code in (None, c))

    # --- verification -------------------------------------------------------------------------------

    def check_signature(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """The AuthFailure code a request's signature earns, or None when it verifies."""
        fields = parse_authorization(headers.get("authorization"))
        if fields is None:
            return "AuthFailure.SignatureFailure"
        secret_key = self.secrets.get(fields["secret_id"])
        if secret_key is None:
            return "AuthFailure.SecretIdNotFound"
        timestamp = headers.get("x-tc-timestamp", "")
        if not timestamp.isdigit():
            return "AuthFailure.SignatureFailure"
        if abs(int(timestamp) - (time.time() + self.faults.clock_skew_seconds)) > TOLERANCE_SECONDS:
            return "AuthFailure.SignatureExpire"
        signed = fields["signed_headers"].split(";")
        if "content-type" not in signed or "host" not in signed or signed != sorted(signed):
            return "AuthFailure.SignatureFailure"
        date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
        if fields["date"] != date or fields["service"] != SERVICE:
            return "AuthFailure.SignatureFailure"
        uri, _, query = path.partition("?")
        canonical = canonical_request(method, uri or "/", query, headers, signed, body)
        expected = tc3_signature(secret_key, date, SERVICE,
                                 string_to_sign(timestamp, f"{date}/{SERVICE}/tc3_request", canonical))
        if self.faults.bad_signature or not hmac.compare_digest(expected, fields["signature"]):
            return "AuthFailure.SignatureFailure"
        return None

    # --- the API ------------------------------------------------------------------------------------

    def handle(self, action: str, document: dict, secret_id: str) -> dict:
        if action == "SendSms":
            return self._send_sms(document, secret_id)
        if action == "PullSmsSendStatus":
            return self._pull(document)
        raise _Refusal("InvalidAction", f"The action {action[:40]} does not exist.")

    def _send_sms(self, document: dict, secret_id: str) -> dict:
        if str(document.get("SmsSdkAppId") or "") != self.sdk_app_id:
            raise _Refusal("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId 不存在。")
        phones = document.get("PhoneNumberSet")
        if not isinstance(phones, list) or not phones:
            raise _Refusal("MissingParameter.EmptyPhoneNumberSet", "传入的号码列表为空。")
        if document.get("SignName") not in self.sign_names:
            raise _Refusal("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误。")
        template_id = str(document.get("TemplateId") or "")
        if template_id not in self.templates:
            raise _Refusal("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配。")
        params = document.get("TemplateParamSet") or []
        if not isinstance(params, list) or len(params) != self.templates[template_id]:
            raise _Refusal("FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                           "请求内容与审核通过的模板内容不匹配。")
        if not all(isinstance(p, str) and p.isdigit() and len(p) <= 6 for p in params):
            raise _Refusal("InvalidParameterValue.TemplateParameterFormatError", "验证码模板参数格式错误。")
        statuses = []
        with self.lock:
            for phone in phones:
                code = "Ok"
                queued = self.faults.number_codes.get(phone)
                if queued:
                    code = queued.pop(0)
                elif not isinstance(phone, str) or not MAINLAND_MOBILE.fullmatch(phone):
                    code = "InvalidParameterValue.IncorrectPhoneNumber"
                serial_no = f"2640:{random_secrets.randbelow(10 ** 19):019d}{len(self.sent):06d}" \
                    if code == "Ok" else ""
                if code == "Ok":
                    self.sent.append(SentSms(serial_no, phone, self.sdk_app_id, template_id, document["SignName"],
                                             list(params), str(document.get("SessionContext") or ""), secret_id,
                                             time.time()))
                    if self.faults.receipt_status:
                        self.receipts.append({
                            "UserReceiveTime": int(time.time()), "CountryCode": "86", "SubscriberNumber": phone[3:],
                            "PhoneNumber": phone, "SerialNo": serial_no, "ReportStatus": self.faults.receipt_status,
                            "Description": "DELIVRD" if self.faults.receipt_status == "SUCCESS" else "MK:0005",
                            "SessionContext": str(document.get("SessionContext") or "")})
                statuses.append({"SerialNo": serial_no, "PhoneNumber": str(phone), "Fee": 1 if code == "Ok" else 0,
                                 "SessionContext": str(document.get("SessionContext") or ""), "Code": code,
                                 "Message": "send success" if code == "Ok" else code, "IsoCode": "CN"})
        return {"SendStatusSet": statuses}

    def _pull(self, document: dict) -> dict:
        if str(document.get("SmsSdkAppId") or "") != self.sdk_app_id:
            raise _Refusal("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId 不存在。")
        limit = document.get("Limit")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise _Refusal("InvalidParameterValue.LimitVerifyFail", "参数 Limit 校验失败。")
        with self.lock:
            handed, self.receipts = self.receipts[:limit], self.receipts[limit:]
        return {"PullSmsSendStatusSet": handed}


class _Refusal(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(code)
        self.code, self.message = code, message


def _handler(emulator: TencentSmsEmulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet in tests
            pass

        def _answer(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)  # exactly application/json: the SDK reads errors so
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            action = headers.get("x-tc-action", "")
            faults = emulator.faults
            with emulator.lock:
                delayed = faults.delay_requests > 0
                faults.delay_requests = max(0, faults.delay_requests - 1)
                failing = faults.outage or faults.fail_requests > 0
                status = 503 if faults.outage else 500
                faults.fail_requests = max(0, faults.fail_requests - (0 if faults.outage else 1))
            if delayed:  # the client gives up first; the request is dropped, as if lost on the way
                time.sleep(faults.delay_seconds)
                emulator.requests.append((action, "timeout"))
                self.close_connection = True
                return
            if failing:
                emulator.requests.append((action, str(status)))
                self._answer(status, b"<html><body>Service Unavailable</body></html>", "text/html")
                return
            request_id = str(uuid.uuid4())
            try:
                refusal = emulator.check_signature(self.command, self.path, headers, body)
                if refusal:
                    raise _Refusal(refusal, "The request signature we calculated does not match the signature "
                                   "you provided." if refusal != "AuthFailure.SignatureExpire" else
                                   "Signature expired. Timestamp and server time differ by more than five minutes.")
                if headers.get("x-tc-version") != VERSION:
                    raise _Refusal("NoSuchVersion", "The API version does not exist.")
                with emulator.lock:
                    if faults.internal_errors > 0:
                        faults.internal_errors -= 1
                        raise _Refusal("InternalError.OtherError", "其他错误。")
                    if faults.request_limits > 0:
                        faults.request_limits -= 1
                        raise _Refusal("RequestLimitExceeded", "请求的次数超过了频率限制。")
                try:
                    document = json.loads(body or b"{}")
                    if not isinstance(document, dict):
                        raise ValueError
                except ValueError:
                    raise _Refusal("FailedOperation.JsonParseFail", "解析请求包体时候失败。") from None
                secret_id = parse_authorization(headers.get("authorization"))["secret_id"]
                response = emulator.handle(action, document, secret_id)
                emulator.requests.append((action, "Ok"))
            except _Refusal as refused:
                emulator.requests.append((action, refused.code))
                response = {"Error": {"Code": refused.code, "Message": refused.message}}
            response["RequestId"] = request_id
            self._answer(200, json.dumps({"Response": response}, ensure_ascii=False).encode("utf-8"))

    return Handler


def write_secrets(directory: str | Path, secret_id: str, secret_key: str) -> Path:
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    (base / SECRET_ID_FILE).write_text(secret_id, "utf-8")
    (base / SECRET_KEY_FILE).write_text(secret_key, "utf-8")
    return base


def new_secret_pair() -> tuple[str, str]:
    return "AKID" + random_secrets.token_hex(16), random_secrets.token_hex(16)


def main() -> None:
    parser = argparse.ArgumentParser(description="Tencent Cloud SMS emulator (tests and staging only)")
    parser.add_argument("--secrets", required=True, help="writes our side's secrets directory here")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--sdk-app-id", default="1400006666")
    parser.add_argument("--sign-name", default="Credence")
    args = parser.parse_args()
    secret_id, secret_key = new_secret_pair()
    write_secrets(args.secrets, secret_id, secret_key)
    purposes = ("registration", "password_reset", "ticket_lookup", "sign_in")
    templates = {purpose: str(100001 + n) for n, purpose in enumerate(purposes)}
    emulator = TencentSmsEmulator({secret_id: secret_key}, args.sdk_app_id, (args.sign_name,),
                                  {t: 2 for t in templates.values()}, port=args.port)
    print(f"Tencent Cloud SMS emulator on {emulator.endpoint}; SMS_ADAPTER=tencent_sms "
          f"SMS_TENCENT_ENDPOINT={emulator.endpoint} SMS_TENCENT_SECRETS_DIR={args.secrets} "
          f"SMS_TENCENT_SDK_APP_ID={args.sdk_app_id} SMS_TENCENT_SIGN_NAME={args.sign_name} "
          f"SMS_TENCENT_TEMPLATES={','.join(f'{p}={t}' for p, t in templates.items())}", flush=True)
    try:
        emulator.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.server.server_close()


if __name__ == "__main__":
    main()
