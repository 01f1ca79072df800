"""A local emulator of Tencent Cloud FaceID (API 3.0, version 2018-03-01), for tests and staging (the vendor is not
reachable from here).

It speaks what the SDK speaks: ``POST /`` with ``X-TC-Action`` / ``X-TC-Version`` / ``X-TC-Timestamp`` and a
``TC3-HMAC-SHA256`` ``Authorization`` it verifies exactly as Tencent Cloud documents it
(services/identity/adapters/faceid.py holds the primitives): an unknown SecretId is
``AuthFailure.SecretIdNotFound``, a wrong signature ``AuthFailure.SignatureFailure``, a timestamp more than 300 s
from its clock ``AuthFailure.SignatureExpire``.
Answers are ``{"Response": {..., "RequestId": ...}}``; errors ``{"Response": {"Error": {"Code", "Message"},
"RequestId"}}`` with HTTP 200, as Tencent Cloud answers them.

Three actions: ``IdCardVerification``, ``DetectAuth`` (answers a ``BizToken`` and the ``Url`` of a liveness page the
emulator hosts) and ``GetDetectInfoEnhanced``. The candidate's side is the page: ``POST <Url>`` with
``outcome=pass|spoof|face_mismatch|id_mismatch|engine_error|abandoned`` "completes" it and redirects to the
session's RedirectUrl with ``token=<BizToken>`` appended, as the real page does; tests may call ``complete`` instead.

Faults (``faults``): the next n requests time out (a delay), answer HTTP 502, answer ``InternalError`` or
``RequestLimitExceeded``, fail the signature or its timestamp; ``IdCardVerification`` may answer any Result
(``-1`` a mismatch, ``-4`` the registry's service failed).

Run it alone for staging: ``python -m services.identity.adapters.faceid_emulator --secrets DIR --port 8766`` writes
``DIR/secret_id`` and ``DIR/secret_key`` and prints the settings to use.
"""

from __future__ import annotations

import argparse
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from credence_common.emulation import EmulatedVendor
from services.identity.adapters.faceid import (
    API_VERSION,
    SECRET_ID_FILE,
    SECRET_KEY_FILE,
    SERVICE,
    TIMESTAMP_WINDOW_SECONDS,
    canonical_request,
    credential_date,
    parse_authorization,
    signature,
    string_to_sign,
)

ACTIONS = ("IdCardVerification", "DetectAuth", "GetDetectInfoEnhanced")
OUTCOMES = ("pass", "spoof", "face_mismatch", "id_mismatch", "engine_error", "abandoned")
PAGE_PREFIX = "/h5/"


@dataclass
class Faults:
    """What the emulator gets wrong on purpose. Counters count down once per API request."""

    delay_requests: int = 0  # the next n requests wait delay_seconds first (a client timeout)
    delay_seconds: float = 0.0
    http_errors: int = 0  # the next n requests answer HTTP 502 (a gateway in front of the API failing)
    internal_errors: int = 0  # ... answer Error InternalError
    rate_limited: int = 0  # ... answer Error RequestLimitExceeded
    signature_failures: int = 0  # ... answer AuthFailure.SignatureFailure whatever the signature
    expired_signatures: int = 0  # ... answer AuthFailure.SignatureExpire whatever the timestamp
    id_card_result: str | None = None  # IdCardVerification's Result for everyone ("-1", "-4", ...)


@dataclass
class EmulatedSession:
    biz_token: str
    rule_id: str
    id_card: str
    name: str
    redirect_url: str
    extra: str
    created_at: float
    outcome: str | None = None
    expired: bool = False  # past the three days its result can be fetched


@dataclass
class Call:
    action: str
    code: str  # "ok" or the error code answered


def error_body(code: str, message: str) -> dict:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}}


class FaceIdEmulator(EmulatedVendor):
    thread_name = "faceid-emulator"

    def __init__(self, secret_id: str | None = None, secret_key: str | None = None, rule_id: str = "1",
                 host: str = "127.0.0.1", port: int = 0):
        self.secret_id = secret_id or "AKID" + secrets.token_hex(16)
        self.secret_key = secret_key or secrets.token_hex(16)
        self.keys = {self.secret_id: self.secret_key}  # every API key the account holds now (two while rotating)
        self.rule_id = rule_id
        self.faults = Faults()
        self.sessions: dict[str, EmulatedSession] = {}
        self.calls: list[Call] = []
        self.clock_offset = 0.0  # the emulator's clock ahead of ours, in seconds
        self.lock = threading.RLock()
        self._listen(_handler(self), host, port)

    def write_secrets(self, directory: str | Path, secret_id: str | None = None) -> Path:
        """Our side's secrets directory, as identity reads it (FACEID_SECRETS_DIR)."""
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        secret_id = secret_id or self.secret_id
        (base / SECRET_ID_FILE).write_text(secret_id + "\n")
        (base / SECRET_KEY_FILE).write_text(self.keys[secret_id] + "\n")
        return base

    def new_key(self) -> tuple[str, str]:
        """The account gets a second API key (CAM allows two): both sign until the old one is disabled."""
        secret_id, secret_key = "AKID" + secrets.token_hex(16), secrets.token_hex(16)
        with self.lock:
            self.keys[secret_id] = secret_key
        return secret_id, secret_key

    def disable_key(self, secret_id: str) -> None:
        with self.lock:
            self.keys.pop(secret_id, None)

    # --- the candidate's side -------------------------------------------------------------------------

    def page_url(self, biz_token: str) -> str:
        return f"{self.base_url}{PAGE_PREFIX}{biz_token}"

    def complete(self, biz_token: str, outcome: str) -> str:
        """The candidate finishes (or leaves) the page; answers where the page sends them back to."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self.lock:
            session = self.sessions[biz_token]
            session.outcome = outcome
        separator = "&" if "?" in session.redirect_url else "?"
        return f"{session.redirect_url}{separator}token={biz_token}"

    def count(self, action: str | None = None) -> int:
        with self.lock:
            return sum(1 for call in self.calls if action is None or call.action == action)

    # --- the API --------------------------------------------------------------------------------------

    def check_request(self, headers, body: bytes) -> tuple[str, str] | None:
        """(code, message) refusing the request, or None when its signature verifies (``headers``: lower-case
        names)."""
        if (headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return "InvalidParameter", "Content-Type must be application/json for a POST request."
        if headers.get("x-tc-version") != API_VERSION:
            return "NoSuchVersion", f"X-TC-Version must be {API_VERSION}."
        auth = parse_authorization(headers.get("authorization"))
        if auth is None:
            return "AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256."
        timestamp_text = headers.get("x-tc-timestamp") or ""
        if not timestamp_text.isdigit() or len(timestamp_text) > 12:
            return "AuthFailure.InvalidAuthorization", "X-TC-Timestamp is not a Unix time in seconds."
        timestamp = int(timestamp_text)
        if abs(time.time() + self.clock_offset - timestamp) > TIMESTAMP_WINDOW_SECONDS:
            return "AuthFailure.SignatureExpire", "The request was signed more than 300 s from now."
        if auth.date != credential_date(timestamp) or auth.service != SERVICE:
            return "AuthFailure.InvalidAuthorization", "Credential's date or service does not match."
        if "content-type" not in auth.signed_headers or "host" not in auth.signed_headers:
            return "AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host."
        with self.lock:
            secret_key = self.keys.get(auth.secret_id)
        if secret_key is None:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found."
        signed = [(name, headers.get(name) or "") for name in auth.signed_headers]
        canonical = canonical_request("POST", "/", "", signed, body)
        expected = signature(secret_key, timestamp, SERVICE, string_to_sign(timestamp, SERVICE, canonical))
        if not hmac.compare_digest(expected, auth.signature):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
        return None

    def answer(self, headers, body: bytes) -> tuple[int, dict]:
        """(HTTP status, document) for one API request."""
        headers = {str(name).lower(): value for name, value in headers.items()}  # names are case-insensitive
        action = headers.get("x-tc-action") or ""
        with self.lock:
            faults = self.faults
            delay = faults.delay_seconds if faults.delay_requests > 0 else 0.0
            faults.delay_requests = max(0, faults.delay_requests - 1)
        if delay:
            time.sleep(delay)
        status, document = self._answer(action, headers, body)
        code = document["Response"].get("Error", {}).get("Code", "ok") if status == 200 else f"HTTP{status}"
        with self.lock:
            self.calls.append(Call(action, code))
        return status, document

    def _answer(self, action: str, headers, body: bytes) -> tuple[int, dict]:
        with self.lock:
            faults = self.faults
            for name, code in (("signature_failures", "AuthFailure.SignatureFailure"),
                               ("expired_signatures", "AuthFailure.SignatureExpire")):
                if getattr(faults, name) > 0:
                    setattr(faults, name, getattr(faults, name) - 1)
                    return 200, error_body(code, "fault injected")
            if faults.http_errors > 0:
                faults.http_errors -= 1
                return 502, {"Response": {"Error": {"Code": "BadGateway", "Message": "fault injected"}}}
        refusal = self.check_request(headers, body)
        if refusal is not None:
            return 200, error_body(*refusal)
        if action not in ACTIONS:
            return 200, error_body("InvalidAction", f"The action {action[:40]!r} does not exist.")
        with self.lock:
            if faults.internal_errors > 0:
                faults.internal_errors -= 1
                return 200, error_body("InternalError", "fault injected")
            if faults.rate_limited > 0:
                faults.rate_limited -= 1
                return 200, error_body("RequestLimitExceeded", "fault injected")
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return 200, error_body("InvalidParameter", "The body is not a JSON object.")
        return 200, {"Response": {**getattr(self, "_" + action)(params), "RequestId": str(uuid.uuid4())}}

    def _IdCardVerification(self, params: dict) -> dict:  # noqa: N802 (the action's name)
        if not params.get("IdCard") or not params.get("Name"):
            return error_body("InvalidParameter", "IdCard and Name are required.")["Response"]
        result = self.faults.id_card_result or "0"
        descriptions = {"0": "姓名和身份证号一致", "-1": "姓名和身份证号不一致", "-2": "非法身份证号",
                        "-3": "非法姓名", "-4": "证件库服务异常", "-5": "证件库中无此身份证记录"}
        return {"Result": result, "Description": descriptions.get(result, "未知")}

    def _DetectAuth(self, params: dict) -> dict:  # noqa: N802
        if params.get("RuleId") != self.rule_id:
            return error_body("InvalidParameterValue.RuleIdNotExist", "RuleId does not exist.")["Response"]
        if not params.get("IdCard") or not params.get("Name"):
            return error_body("InvalidParameter", "IdCard and Name are required by this RuleId.")["Response"]
        token = str(uuid.uuid4()).upper()
        with self.lock:
            self.sessions[token] = EmulatedSession(
                token, params["RuleId"], params["IdCard"], params["Name"],
                params.get("RedirectUrl") or "https://cloud.tencent.com/product/faceid", params.get("Extra") or "",
                time.time())
        return {"Url": self.page_url(token), "BizToken": token}

    def _GetDetectInfoEnhanced(self, params: dict) -> dict:  # noqa: N802
        with self.lock:
            session = self.sessions.get(str(params.get("BizToken") or ""))
        if session is None:
            return error_body("InvalidParameterValue.BizTokenIllegal", "BizToken is not valid.")["Response"]
        if session.expired:
            return error_body("InvalidParameterValue.BizTokenExpired", "BizToken has expired.")["Response"]
        if params.get("RuleId") != session.rule_id:
            return error_body("InvalidParameterValue.RuleIdNotExist", "RuleId does not match.")["Response"]
        return {"Text": self.text(session)}

    @staticmethod
    def text(session: EmulatedSession) -> dict:
        """DetectInfoText as the H5 flow leaves it (人脸核身 H5 返回码)."""
        base = {"ErrCode": None, "ErrMsg": None, "IdCard": session.id_card, "Name": session.name,
                "LiveStatus": None, "LiveMsg": None, "Comparestatus": None, "Comparemsg": None, "Sim": None,
                "Extra": session.extra, "LivenessMode": None}
        outcome = session.outcome
        if outcome == "pass":
            base.update(ErrCode=0, ErrMsg="成功", LiveStatus=0, LiveMsg="成功", Comparestatus=0, Comparemsg="成功",
                        Sim="92.53", LivenessMode=3)
        elif outcome == "spoof":
            base.update(ErrCode=1002, ErrMsg="疑似非真人录制", LiveStatus=1002, LiveMsg="疑似非真人录制",
                        LivenessMode=3)
        elif outcome == "face_mismatch":
            base.update(ErrCode=2016, ErrMsg="无法判断为同一人", LiveStatus=0, LiveMsg="成功", Comparestatus=2016,
                        Comparemsg="相似度未达到通过阈值", Sim="41.20", LivenessMode=3)
        elif outcome == "id_mismatch":
            base.update(ErrCode=2006, ErrMsg="姓名和身份证号不匹配", LiveStatus=0, LiveMsg="成功", Comparestatus=2006,
                        Comparemsg="姓名和身份证号不匹配")
        elif outcome == "engine_error":
            base.update(ErrCode=1001, ErrMsg="引擎超时,请稍后重试")
        elif outcome == "abandoned":
            base.update(ErrCode=17, ErrMsg="本次流程未完成")
        return base


def _handler(emulator: FaceIdEmulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status: int, document: dict | None = None, headers: dict | None = None,
                  text: str | None = None) -> None:
            body = (json.dumps(document, ensure_ascii=False) if document is not None else text or "").encode()
            self.send_response(status)
            # exactly application/json: the SDK reads an error's Code only from that content type
            self.send_header("Content-Type", "application/json" if document is not None else
                             "text/html; charset=utf-8")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):  # noqa: N802
            path = urlsplit(self.path).path
            token = path[len(PAGE_PREFIX):] if path.startswith(PAGE_PREFIX) else ""
            if token not in emulator.sessions:
                self._send(404, text="no such liveness session")
                return
            choices = "".join(f'<button name="outcome" value="{o}">{o}</button>' for o in OUTCOMES)
            self._send(200, text=f'<html><body><h1>FaceID emulator: liveness</h1><form method="post">{choices}'
                                 "</form></body></html>")

        def do_POST(self):  # noqa: N802
            body = self._body()
            path = urlsplit(self.path).path
            if path.startswith(PAGE_PREFIX):
                token = path[len(PAGE_PREFIX):]
                outcome = (parse_qs(body.decode("utf-8", "replace")).get("outcome") or [""])[0]
                if token not in emulator.sessions or outcome not in OUTCOMES:
                    self._send(404, text="no such liveness session or outcome")
                    return
                self._send(302, text="", headers={"Location": emulator.complete(token, outcome)})
                return
            if path != "/":
                self._send(404, error_body("InvalidAction", "Use POST / with X-TC-Action."))
                return
            status, document = emulator.answer(self.headers, body)
            self._send(status, document)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Tencent Cloud FaceID emulator (staging and tests only)")
    parser.add_argument("--secrets", required=True, help="where to write secret_id and secret_key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--rule-id", default="1")
    args = parser.parse_args()
    emulator = FaceIdEmulator(rule_id=args.rule_id, host=args.host, port=args.port)
    emulator.write_secrets(args.secrets)
    print(f"FaceID emulator on {emulator.base_url}; IDENTITY_VERIFIER=tencent_faceid FACEID_SECRETS_DIR={args.secrets} "
          f"FACEID_ENDPOINT={emulator.base_url} FACEID_RULE_ID={args.rule_id}", flush=True)
    emulator.server.serve_forever()


if __name__ == "__main__":
    main()
