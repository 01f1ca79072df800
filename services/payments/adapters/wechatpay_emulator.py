"""A local emulator of WeChat Pay API v3, for tests and staging (vendors' servers are not reachable from here).

It is the provider's side, with its own keys (the test generates them): it verifies each request's
``WECHATPAY2-SHA256-RSA2048`` Authorization with the merchant's public key, signs each answer with its platform key
(``Wechatpay-Timestamp/-Nonce/-Signature/-Serial``), and builds notifications as WeChat Pay documents them: a JSON
envelope whose ``resource`` is AEAD_AES_256_GCM ciphertext under the APIv3 key, signed over
``timestamp\\nnonce\\nbody\\n``. The payer's side (paying, refunds settling) is driven by Python calls.

It can be told to fail (``faults``): answers with a bad signature, 5xx or a delay (timeouts), a refund it rejects,
a bill that disagrees with what happened; and notifications forged, stale, undecryptable or signed by an unknown
serial. Duplicates and out-of-order delivery are the test's to arrange: every call of ``notification`` signs
afresh (a redelivery), and the same bytes and headers sent twice are a replay.

Run it alone (``python -m services.payments.adapters.wechatpay_emulator --keys DIR``) for ``make run`` in staging mode;
``POST /emulator/trades/<out_trade_no>/payment`` (unsigned: it is the payer, not the API) then pays an order and
delivers the notification to the order's notify_url, retrying as WeChat Pay does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from credence_common.emulation import EmulatedVendor
from services.payments.adapters.wechatpay import (
    APIV3_KEY_FILE,
    AUTH_SCHEMA,
    BILL_COLUMNS,
    HEADER_NONCE,
    HEADER_SERIAL,
    HEADER_SIGNATURE,
    HEADER_SIGNATURE_TYPE,
    HEADER_TIMESTAMP,
    MERCHANT_KEY_FILE,
    MERCHANT_SERIAL_FILE,
    PLATFORM_DIR,
    encrypt_resource,
    fen_to_yuan,
    parse_authorization,
    request_message,
    response_message,
    rsa_sign,
    rsa_verify,
)
from services.payments.domain.providers import PROVIDER_ZONE

# the payer's side, for staging: POST /emulator/trades/<out_trade_no>/payment pays and notifies
PAYER_ROUTE = re.compile(r"^/emulator/trades/([^/]+)/payment$")


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class EmulatorKeys:
    """Both sides' keys, generated: the merchant's (ours) and WeChat Pay's platform key(s)."""

    merchant_key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    merchant_serial: str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    apiv3_key: bytes = field(default_factory=lambda: secrets.token_hex(16).encode())
    platform_key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    platform_serial: str = "PUB_KEY_ID_0114232134912410000000000001"

    def write(self, directory: str | Path) -> Path:
        """Our side's secrets directory, as the service reads it (only the platform's public key)."""
        base = Path(directory)
        (base / PLATFORM_DIR).mkdir(parents=True, exist_ok=True)
        (base / MERCHANT_KEY_FILE).write_bytes(pem_private(self.merchant_key))
        (base / MERCHANT_SERIAL_FILE).write_text(self.merchant_serial + "\n")
        (base / APIV3_KEY_FILE).write_bytes(self.apiv3_key)
        (base / PLATFORM_DIR / f"{self.platform_serial}.pem").write_bytes(pem_public(self.platform_key))
        return base


@dataclass
class Faults:
    """What the emulator gets wrong on purpose. Counters count down once per API request."""

    fail_requests: int = 0  # the next n requests answer 500 SYSTEM_ERROR
    delay_requests: int = 0  # the next n requests wait delay_seconds first (a client timeout)
    delay_seconds: float = 0.0
    forge_answers: bool = False  # answers signed with a key that is not the platform key
    openid_mismatch: bool = False  # a JSAPI order is refused: the openid is not of the order's appid
    reject_refunds: str | None = None  # a refund request is refused with this code (e.g. NOT_ENOUGH, INVALID_REQUEST)
    refund_status: str = "PROCESSING"  # what a new refund is answered with (SUCCESS: settled at once)
    bill_amounts: dict[str, int] = field(default_factory=dict)  # out_trade_no -> the amount the bill shows
    bill_extra: list[dict] = field(default_factory=list)  # trades on the bill we never heard of
    bill_omit: set[str] = field(default_factory=set)  # out_trade_no left off the bill


@dataclass
class Trade:
    out_trade_no: str
    appid: str
    mchid: str
    description: str
    total: int
    trade_type: str
    notify_url: str
    trade_state: str = "NOTPAY"
    transaction_id: str | None = None
    paid_total: int | None = None
    success_time: datetime | None = None
    payer_openid: str | None = None


@dataclass
class EmulatedRefund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    status: str
    created_at: datetime
    success_time: datetime | None = None


class WeChatPayEmulator(EmulatedVendor):
    thread_name = "wechatpay-emulator"

    def __init__(self, keys: EmulatorKeys, mchid: str = "1900000001", host: str = "127.0.0.1", port: int = 0):
        self.keys = keys
        self.mchid = mchid
        self.merchant_keys = {keys.merchant_serial: keys.merchant_key.public_key()}
        self.faults = Faults()
        self.trades: dict[str, Trade] = {}
        self.refunds: dict[str, EmulatedRefund] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) as answered
        self.received: list[tuple[str, str]] = []  # (method, path) as they arrive, before any delay
        self.bills: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self._listen(_handler(self), host, port)
        self.impostor_key = new_rsa_key()  # signs what is forged on purpose

    def rotate_platform_key(self, serial: str) -> rsa.RSAPrivateKey:
        """WeChat Pay starts signing with a new platform key (the merchant adds its public half beside the old)."""
        self.keys.platform_key, self.keys.platform_serial = new_rsa_key(), serial
        return self.keys.platform_key

    # --- signing ------------------------------------------------------------------------------------

    def signed_headers(self, body: bytes, timestamp: int | None = None, key=None,
                       serial: str | None = None, nonce: str | None = None) -> dict[str, str]:
        timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(16).upper()
        signature = rsa_sign(key or self.keys.platform_key, response_message(timestamp_text, nonce, body))
        return {HEADER_TIMESTAMP: timestamp_text, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature,
                HEADER_SERIAL: serial or self.keys.platform_serial, HEADER_SIGNATURE_TYPE: AUTH_SCHEMA,
                "Request-ID": str(uuid.uuid4())}

    def check_authorization(self, method: str, target: str, authorization: str | None, body: bytes) -> str | None:
        """Why a request's signature is refused, or None when it verifies."""
        fields = parse_authorization(authorization)
        if fields is None:
            return "Authorization is not WECHATPAY2-SHA256-RSA2048 with mchid, nonce_str, signature, timestamp, " \
                   "serial_no"
        if fields["mchid"] != self.mchid:
            return "mchid does not match"
        key = self.merchant_keys.get(fields["serial_no"])
        if key is None:
            return f"unknown merchant certificate serial {fields['serial_no']}"
        if not fields["timestamp"].isdigit() or abs(int(fields["timestamp"]) - time.time()) > 300:
            return "timestamp too far from now"
        message = request_message(method, target, fields["timestamp"], fields["nonce_str"], body)
        if not rsa_verify(key, message, fields["signature"]):
            return "signature does not verify"
        return None

    # --- the payer's side ---------------------------------------------------------------------------

    def pay(self, out_trade_no: str, amount_fen: int | None = None, even_if_closed: bool = False,
            when: datetime | None = None) -> Trade:
        with self.lock:
            trade = self.trades[out_trade_no]
            if trade.trade_state in ("SUCCESS", "REFUND"):
                return trade
            if trade.trade_state == "CLOSED" and not even_if_closed:
                raise ValueError("the order is closed")
            when = when or datetime.now(UTC)
            trade.trade_state, trade.paid_total, trade.success_time = (
                "SUCCESS", trade.total if amount_fen is None else amount_fen, when)
            trade.transaction_id = f"4200{when.astimezone(PROVIDER_ZONE):%Y%m%d}{secrets.randbelow(10**18):018d}"
            return trade

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS") -> EmulatedRefund:
        with self.lock:
            refund = self.refunds[out_refund_no]
            refund.status = status
            refund.success_time = datetime.now(UTC) if status == "SUCCESS" else None
            return refund

    # --- notifications ------------------------------------------------------------------------------

    def _envelope(self, event_type: str, resource_type: str, content: dict, undecryptable: bool) -> bytes:
        nonce, associated = secrets.token_hex(6), resource_type
        key = secrets.token_hex(16).encode() if undecryptable else self.keys.apiv3_key
        ciphertext = encrypt_resource(key, nonce, associated, json.dumps(content, ensure_ascii=False).encode())
        return json.dumps({
            "id": str(uuid.uuid4()), "create_time": datetime.now(PROVIDER_ZONE).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource", "event_type": event_type,
            "summary": "支付成功" if event_type.startswith("TRANSACTION") else "退款状态变更",
            "resource": {"original_type": resource_type, "algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
                         "associated_data": associated, "nonce": nonce}}, ensure_ascii=False).encode()

    def _sign_notification(self, body: bytes, forged: bool, stale_seconds: int, serial: str | None,
                           nonce: str | None = None):
        key = self.impostor_key if forged else None
        timestamp = int(time.time()) - stale_seconds
        headers = self.signed_headers(body, timestamp, key, serial, nonce)
        headers.pop("Request-ID")
        headers["Content-Type"] = "application/json"
        return body, headers

    def notification(self, out_trade_no: str, forged: bool = False, stale_seconds: int = 0,
                     undecryptable: bool = False, serial: str | None = None,
                     nonce: str | None = None) -> tuple[bytes, dict[str, str]]:
        """TRANSACTION.SUCCESS for a paid trade, signed afresh on every call (a redelivery). ``nonce``: sign with
        this nonce instead of a new one (a notification reusing an earlier one's nonce over another body)."""
        with self.lock:
            trade = self.trades[out_trade_no]
            content = {"mchid": trade.mchid, "appid": trade.appid, "out_trade_no": trade.out_trade_no,
                       "transaction_id": trade.transaction_id, "trade_type": trade.trade_type,
                       "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
                       "attach": "", "success_time": trade.success_time.astimezone(PROVIDER_ZONE).isoformat(
                           timespec="seconds"),
                       "payer": {"openid": trade.payer_openid or "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                       "amount": {"total": trade.paid_total, "payer_total": trade.paid_total, "currency": "CNY",
                                  "payer_currency": "CNY"}}
        body = self._envelope("TRANSACTION.SUCCESS", "transaction", content, undecryptable)
        return self._sign_notification(body, forged, stale_seconds, serial, nonce)

    def refund_notification(self, out_refund_no: str, forged: bool = False, stale_seconds: int = 0,
                            undecryptable: bool = False) -> tuple[bytes, dict[str, str]]:
        with self.lock:
            refund = self.refunds[out_refund_no]
            content = {"mchid": self.mchid, "out_trade_no": refund.out_trade_no,
                       "transaction_id": refund.transaction_id, "out_refund_no": refund.out_refund_no,
                       "refund_id": refund.refund_id, "refund_status": refund.status,
                       "user_received_account": "支付用户零钱",
                       "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                                  "payer_refund": refund.refund}}
            if refund.success_time:
                content["success_time"] = refund.success_time.astimezone(PROVIDER_ZONE).isoformat(timespec="seconds")
        body = self._envelope(f"REFUND.{refund.status}", "refund", content, undecryptable)
        return self._sign_notification(body, forged, stale_seconds, serial=None)

    def deliver(self, signed, url: str, attempts: int = 3, backoff_seconds: float = 0.5) -> int:
        """POST a notification (``signed()`` answers its body and headers, signed afresh for each attempt) to
        ``url`` as WeChat Pay does, again after a failure (it keeps trying for a day; the emulator a few times).
        Answers the last HTTP status (0: unreachable)."""
        status = 0
        for attempt in range(attempts):
            body, headers = signed()
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (our own notify_url)
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            if 200 <= status < 300:
                return status
            time.sleep(backoff_seconds * (attempt + 1))
        return status

    def pay_and_notify(self, out_trade_no: str) -> dict:
        """Staging: the payer pays, and the notification goes to the order's notify_url."""
        trade = self.pay(out_trade_no)
        status = self.deliver(lambda: self.notification(out_trade_no), trade.notify_url)
        return {"out_trade_no": out_trade_no, "transaction_id": trade.transaction_id, "notify_status": status}

    # --- the API ------------------------------------------------------------------------------------

    def _trade_json(self, trade: Trade) -> dict:
        document = {"appid": trade.appid, "mchid": trade.mchid, "out_trade_no": trade.out_trade_no,
                    "trade_type": trade.trade_type, "trade_state": trade.trade_state,
                    "trade_state_desc": trade.trade_state,
                    "amount": {"total": trade.paid_total if trade.paid_total is not None else trade.total,
                               "currency": "CNY"}}
        if trade.transaction_id:
            document["transaction_id"] = trade.transaction_id
            document["success_time"] = trade.success_time.astimezone(PROVIDER_ZONE).isoformat(timespec="seconds")
        return document

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, dict | bytes | None]:
        parts = urlsplit(target)
        path, params = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        document = json.loads(body) if body else {}
        with self.lock:
            if method == "POST" and path in ("/v3/pay/transactions/native", "/v3/pay/transactions/jsapi"):
                trade_type = path.rsplit("/", 1)[1].upper()
                if document.get("mchid") != self.mchid:
                    return 400, {"code": "MCH_NOT_EXISTS", "message": "商户号不存在"}
                openid = (document.get("payer") or {}).get("openid")
                if trade_type == "JSAPI" and not openid:
                    return 400, {"code": "PARAM_ERROR", "message": "payer.openid is required"}
                if trade_type == "JSAPI" and self.faults.openid_mismatch:
                    return 400, {"code": "PARAM_ERROR", "message": "appid和openid不匹配"}
                number = document["out_trade_no"]
                if number not in self.trades:
                    self.trades[number] = Trade(number, document["appid"], document["mchid"],
                                                document["description"], document["amount"]["total"], trade_type,
                                                document["notify_url"], payer_openid=openid)
                elif self.trades[number].trade_state != "NOTPAY":
                    return 400, {"code": "ORDERPAID" if self.trades[number].transaction_id else "ORDER_CLOSED",
                                 "message": "订单状态不允许"}
                if trade_type == "JSAPI":
                    return 200, {"prepay_id": f"wx{hashlib.sha1(number.encode()).hexdigest()[:30]}"}
                return 200, {"code_url": f"weixin://wxpay/bizpayurl?pr={hashlib.sha1(number.encode()).hexdigest()[:7]}"}
            if method == "GET" and path.startswith("/v3/pay/transactions/out-trade-no/"):
                trade = self.trades.get(unquote(path.rsplit("/", 1)[1]))
                if trade is None or params.get("mchid") != self.mchid:
                    return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
                return 200, self._trade_json(trade)
            if method == "POST" and path.startswith("/v3/pay/transactions/out-trade-no/") and path.endswith("/close"):
                trade = self.trades.get(unquote(path.split("/")[-2]))
                if trade is None:
                    return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
                if trade.trade_state in ("SUCCESS", "REFUND"):
                    return 400, {"code": "ORDERPAID", "message": "订单已支付"}
                trade.trade_state = "CLOSED"
                return 204, None
            if method == "POST" and path == "/v3/refund/domestic/refunds":
                return self._refund(document)
            if method == "GET" and path.startswith("/v3/refund/domestic/refunds/"):
                refund = self.refunds.get(unquote(path.rsplit("/", 1)[1]))
                if refund is None:
                    return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}
                return 200, self._refund_json(refund)
            if method == "GET" and path == "/v3/bill/tradebill":
                return self._bill(params.get("bill_date", ""))
            if method == "GET" and path == "/v3/billdownload/file":
                bill = self.bills.get(params.get("token", ""))
                return (200, bill) if bill is not None else (404, {"code": "NO_STATEMENT_EXIST", "message": "no"})
        return 404, {"code": "NOT_FOUND", "message": f"no {method} {path}"}

    def _refund(self, document: dict) -> tuple[int, dict]:
        number = document.get("out_refund_no")
        existing = self.refunds.get(number)
        if existing is not None:
            return 200, self._refund_json(existing)
        if self.faults.reject_refunds:
            return (403 if self.faults.reject_refunds == "NOT_ENOUGH" else 400), {
                "code": self.faults.reject_refunds, "message": "退款被拒绝"}
        trade = next((t for t in self.trades.values() if t.transaction_id == document.get("transaction_id")), None)
        if trade is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        amount = document.get("amount") or {}
        taken = sum(r.refund for r in self.refunds.values() if r.transaction_id == trade.transaction_id
                    and r.status != "CLOSED")  # an ABNORMAL refund's money left the merchant too
        if amount.get("total") != trade.paid_total or taken + amount.get("refund", 0) > trade.paid_total:
            return 400, {"code": "INVALID_REQUEST", "message": "退款金额或订单金额不正确"}
        refund = EmulatedRefund(number, f"50300{secrets.randbelow(10**24):024d}", trade.out_trade_no,
                                trade.transaction_id, amount["refund"], trade.paid_total, self.faults.refund_status,
                                datetime.now(UTC))
        if refund.status == "SUCCESS":
            refund.success_time = refund.created_at
        self.refunds[number] = refund
        trade.trade_state = "REFUND"
        return 200, self._refund_json(refund)

    @staticmethod
    def _refund_json(refund: EmulatedRefund) -> dict:
        """A refund as the refund request and the refund query (查询单笔退款) answer it."""
        document = {"refund_id": refund.refund_id, "out_refund_no": refund.out_refund_no,
                    "transaction_id": refund.transaction_id, "out_trade_no": refund.out_trade_no,
                    "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "status": refund.status,
                    "funds_account": "AVAILABLE",
                    "create_time": refund.created_at.astimezone(PROVIDER_ZONE).isoformat(timespec="seconds"),
                    "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                               "payer_refund": refund.refund, "currency": "CNY"}}
        if refund.success_time is not None:
            document["success_time"] = refund.success_time.astimezone(PROVIDER_ZONE).isoformat(timespec="seconds")
        return document

    def bill_csv(self, day: date) -> bytes:
        """The ALL trade bill of a Beijing day, with the planted disagreements."""
        def on_day(moment):
            return moment is not None and moment.astimezone(PROVIDER_ZONE).date() == day

        def row(when, trade_no, out_trade_no, status, settle_fen, refund_id="0", out_refund_no="0", refund_fen=0,
                order_fen=0, requested_refund_fen=0):
            fields = [when.astimezone(PROVIDER_ZONE).strftime("%Y-%m-%d %H:%M:%S"), "wxappid", self.mchid, "0", "",
                      trade_no, out_trade_no, "openid", "NATIVE", status, "OTHERS", "CNY", fen_to_yuan(settle_fen),
                      "0.00", refund_id, out_refund_no, fen_to_yuan(refund_fen), "0.00",
                      "ORIGINAL" if status == "REFUND" else "", "SUCCESS" if status == "REFUND" else "",
                      "Credence", "", "0.00000", "0.60%", fen_to_yuan(order_fen), fen_to_yuan(requested_refund_fen),
                      ""]
            return ",".join("`" + f for f in fields)

        lines = [",".join(BILL_COLUMNS)]
        payments = 0
        for trade in self.trades.values():
            if trade.transaction_id and on_day(trade.success_time) and trade.out_trade_no not in self.faults.bill_omit:
                amount = self.faults.bill_amounts.get(trade.out_trade_no, trade.paid_total)
                lines.append(row(trade.success_time, trade.transaction_id, trade.out_trade_no, "SUCCESS", amount,
                                 order_fen=amount))
                payments += amount
        for extra in self.faults.bill_extra:
            lines.append(row(datetime.now(UTC), extra["transaction_id"], extra["out_trade_no"], "SUCCESS",
                             extra["amount_fen"], order_fen=extra["amount_fen"]))
            payments += extra["amount_fen"]
        refunded = 0
        for refund in self.refunds.values():
            if refund.status == "SUCCESS" and on_day(refund.success_time):
                lines.append(row(refund.success_time, refund.transaction_id, refund.out_trade_no, "REFUND", 0,
                                 refund.refund_id, refund.out_refund_no, refund.refund,
                                 requested_refund_fen=refund.refund))
                refunded += refund.refund
        lines.append("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额")
        lines.append(",".join("`" + f for f in (str(len(lines) - 2), fen_to_yuan(payments), fen_to_yuan(refunded),
                                               "0.00", "0.00000", fen_to_yuan(payments), fen_to_yuan(refunded))))
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def _bill(self, bill_date: str) -> tuple[int, dict]:
        try:
            day = date.fromisoformat(bill_date)
        except ValueError:
            return 400, {"code": "PARAM_ERROR", "message": "bill_date"}
        bill = self.bill_csv(day)
        token = secrets.token_urlsafe(12)
        self.bills[token] = bill
        return 200, {"hash_type": "SHA1", "hash_value": hashlib.sha1(bill).hexdigest(),  # noqa: S324 (documented)
                     "download_url": f"{self.base_url}/v3/billdownload/file?token={token}"}


def _handler(emulator: WeChatPayEmulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet in tests
            pass

        def _serve(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            faults = emulator.faults
            emulator.received.append((self.command, urlsplit(self.path).path))
            with emulator.lock:
                delay = faults.delay_seconds if faults.delay_requests > 0 else 0.0
                faults.delay_requests = max(0, faults.delay_requests - 1)
                failing = faults.fail_requests > 0
                faults.fail_requests = max(0, faults.fail_requests - 1)
            if delay:
                time.sleep(delay)
            payer = PAYER_ROUTE.match(urlsplit(self.path).path) if self.command == "POST" else None
            refusal = None if payer else emulator.check_authorization(self.command, self.path,
                                                                      self.headers.get("Authorization"), body)
            if payer:  # the payer's side (staging): not WeChat Pay's API, so not signed
                number = unquote(payer.group(1))
                if number not in emulator.trades:
                    status, answer = 404, {"code": "ORDER_NOT_EXIST", "message": "no such order"}
                elif emulator.trades[number].trade_state == "CLOSED":
                    status, answer = 409, {"code": "ORDER_CLOSED", "message": "the order is closed"}
                else:
                    status, answer = 200, emulator.pay_and_notify(number)
            elif refusal:
                status, answer = 401, {"code": "SIGN_ERROR", "message": refusal}
            elif failing:
                status, answer = 500, {"code": "SYSTEM_ERROR", "message": "系统错误"}
            else:
                status, answer = emulator.handle(self.command, self.path, body)
            emulator.requests.append((self.command, urlsplit(self.path).path, status))
            payload = answer if isinstance(answer, bytes) else (
                json.dumps(answer, ensure_ascii=False).encode() if answer is not None else b"")
            self.send_response(status)
            if isinstance(answer, bytes):  # a bill download is not signed: its SHA1 was announced signed
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            else:
                key = emulator.impostor_key if faults.forge_answers else None
                for name, value in emulator.signed_headers(payload, key=key).items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="WeChat Pay API v3 emulator (tests and staging only)")
    parser.add_argument("--keys", required=True, help="writes our side's secrets directory here")
    parser.add_argument("--mchid", default="1900000001")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    keys = EmulatorKeys()
    keys.write(args.keys)
    emulator = WeChatPayEmulator(keys, args.mchid, port=args.port)
    print(f"WeChat Pay emulator on {emulator.base_url}; WECHATPAY_SECRETS_DIR={args.keys} "
          f"WECHATPAY_API_BASE={emulator.base_url}", flush=True)
    try:
        emulator.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.server.server_close()


if __name__ == "__main__":
    main()

