"""WeChat Pay API v3 (微信支付 APIv3) as a ``PaymentProvider``: Native and JSAPI prepay, query by out_trade_no, close,
refund, the signed and encrypted notifications (payments and refunds) and the daily trade bill for reconciliation.

The documented scheme, implemented directly with ``cryptography`` (no vendor SDK: ours must read its keys from a
secrets directory that rotates under a running process, and must never download certificates on its own):

- every request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",
  timestamp="…",serial_no="…"``, the signature being RSA-SHA256 (PKCS#1 v1.5) with the merchant's private key over
  ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` (URL: path and query);
- every answer and every notification is signed by WeChat Pay over ``timestamp\\nnonce\\nbody\\n`` (headers
  ``Wechatpay-Timestamp``, ``-Nonce``, ``-Signature``, ``-Serial``): we verify it with the platform public key or
  platform certificate whose serial the ``Wechatpay-Serial`` header names, and refuse a timestamp too far from now;
- a notification's ``resource`` is AEAD_AES_256_GCM ciphertext under the APIv3 key, with its ``nonce`` and
  ``associated_data``;
- money is integer fen (``amount.total``); the trade bill is CSV in yuan, converted to fen exactly.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from credence_common.contracts.errors import BadRequest, ServiceUnavailable, Unauthorized
from credence_common.security.secret_files import ReloadingSecrets
from services.payments import domain
from services.payments.domain.providers import (
    PROVIDER_ZONE,
    Notification,
    ProviderError,
    ProviderRefund,
    ProviderTrade,
    StatementLine,
    header,
)

log = logging.getLogger(__name__)

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL = (
    "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")
# names the algorithm of the signature (absent: RSA); a notification signed otherwise (WeChat Pay's SM2 national
# cryptography variant) is not one our keys can verify
HEADER_SIGNATURE_TYPE = "Wechatpay-Signature-Type"
DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
# Error codes after which asking again later may help (WeChat Pay's documented "retry" codes).
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "BANK_ERROR", "NOT_ENOUGH"})
# Refusals that change what we do (an order taken as paid, closed or missing): believed only when signed.
ACTED_ON_CODES = frozenset({"ORDERPAID", "ORDER_CLOSED", "ORDER_NOT_EXIST"})


# --- the documented primitives ------------------------------------------------------------------------

def request_message(method: str, url: str, timestamp: str, nonce: str, body: str | bytes) -> bytes:
    """What a merchant signs: ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` (URL is the path with its query)."""
    body = body.decode("utf-8") if isinstance(body, bytes) else body
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n{body}\n".encode()


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs on an answer or a notification: ``timestamp\\nnonce\\nbody\\n``."""
    return domain.signing_message(timestamp, nonce, body)


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(public_key, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def authorization(mchid: str, serial_no: str, private_key, method: str, url: str, body: str | bytes,
                  timestamp: str | None = None, nonce: str | None = None) -> str:
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or secrets.token_hex(16).upper()
    signature = rsa_sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(value: str | None) -> dict[str, str] | None:
    """The fields of an ``Authorization`` header of our schema, or None when it is not one."""
    if not value or not value.startswith(AUTH_SCHEMA + " "):
        return None
    fields = {}
    for part in value[len(AUTH_SCHEMA) + 1:].split(","):
        name, eq, quoted = part.strip().partition("=")
        if not eq or len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
            return None
        fields[name] = quoted[1:-1]
    wanted = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    return fields if wanted <= fields.keys() else None


def decrypt_resource(apiv3_key: bytes, nonce: str, associated_data: str | None, ciphertext: str) -> bytes:
    """AEAD_AES_256_GCM: raises ``InvalidTag`` (or ``ValueError``) when the key, nonce, data or text is wrong."""
    return AESGCM(apiv3_key).decrypt(nonce.encode(), base64.b64decode(ciphertext, validate=True),
                                     (associated_data or "").encode() or None)


def encrypt_resource(apiv3_key: bytes, nonce: str, associated_data: str | None, plaintext: bytes) -> str:
    return base64.b64encode(AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext,
                                                      (associated_data or "").encode() or None)).decode("ascii")


def certificate_serial(certificate: x509.Certificate) -> str:
    """A platform or merchant certificate's serial as WeChat Pay writes it: upper-case hex."""
    return format(certificate.serial_number, "X")


def load_platform_key(pem: bytes, fallback_serial: str) -> tuple[str, object]:
    """A platform certificate (its serial is its own) or a WeChat Pay public key (its serial, ``PUB_KEY_ID_…``, is
    the file's name)."""
    if b"BEGIN CERTIFICATE" in pem:
        certificate = x509.load_pem_x509_certificate(pem)
        return certificate_serial(certificate), certificate.public_key()
    return fallback_serial, serialization.load_pem_public_key(pem)


def yuan_to_fen(text: str) -> int:
    """``"60.00"`` -> 6000, exactly (a bill is in yuan with two decimals)."""
    try:
        value = Decimal(text.strip().lstrip("`").strip()) * 100
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if value != value.to_integral_value():
        raise ValueError(f"not a whole number of fen: {text!r}")
    return int(value)


def fen_to_yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


# --- keys: from a secrets directory, reread when it changes -------------------------------------------

MERCHANT_KEY_FILE, MERCHANT_SERIAL_FILE, APIV3_KEY_FILE, PLATFORM_DIR = (
    "apiclient_key.pem", "merchant_serial_no", "apiv3_key", "platform")


@dataclass(frozen=True)
class WeChatPayKeys:
    merchant_serial: str
    merchant_private_key: rsa.RSAPrivateKey
    apiv3_key: bytes
    platform_keys: dict[str, object] = field(default_factory=dict)  # serial -> public key


def load_keys(directory: str | os.PathLike, platform_directory: str | os.PathLike | None = None) -> WeChatPayKeys:
    """``apiclient_key.pem`` (the merchant's private key), ``merchant_serial_no`` (its certificate's serial),
    ``apiv3_key`` (32 bytes) and ``platform/*.pem`` (every platform certificate or WeChat Pay public key we trust
    now: several at once while WeChat Pay rotates). The platform keys may live in a directory of their own
    (``platform_directory``): a Kubernetes Secret volume holds files but no subdirectory, so the merchant's keys
    and the platform keys are two Secrets mounted side by side. Raises ``ValueError`` naming what is wrong."""
    base = Path(directory)
    platform_base = Path(platform_directory) if platform_directory else base / PLATFORM_DIR
    try:
        private_key = serialization.load_pem_private_key((base / MERCHANT_KEY_FILE).read_bytes(), password=None)
        serial = (base / MERCHANT_SERIAL_FILE).read_text("ascii").strip()
        apiv3_key = (base / APIV3_KEY_FILE).read_bytes().strip()
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"WeChat Pay keys in {base}: {error}") from None
    if not isinstance(private_key, rsa.RSAPrivateKey) or private_key.key_size < 2048:
        raise ValueError(f"WeChat Pay keys in {base}: {MERCHANT_KEY_FILE} must be an RSA key of 2048 bits or more")
    if len(apiv3_key) != 32:
        raise ValueError(f"WeChat Pay keys in {base}: {APIV3_KEY_FILE} must be the 32-character APIv3 key")
    if not serial:
        raise ValueError(f"WeChat Pay keys in {base}: {MERCHANT_SERIAL_FILE} is empty")
    platform = {}
    for path in sorted(platform_base.glob("*.pem")):
        platform_serial, key = load_platform_key(path.read_bytes(), path.stem)
        platform[platform_serial] = key
    if not platform:
        raise ValueError(f"WeChat Pay keys: no platform key or certificate in {platform_base}/*.pem")
    return WeChatPayKeys(serial, private_key, apiv3_key, platform)


class KeyStore:
    """The keys in a secrets directory, reread when a file in it changes (a mounted secret updated in place, a new
    platform key dropped beside the old one): a rotation needs no restart. A broken update keeps the last good
    keys and is logged, so a half-written file never stops payments."""

    def __init__(self, directory: str | os.PathLike, check_interval_seconds: float = 5.0,
                 platform_directory: str | os.PathLike | None = None):
        self.directory = Path(directory)
        self.platform_directory = Path(platform_directory) if platform_directory else self.directory / PLATFORM_DIR
        self._files = ReloadingSecrets(f"WeChat Pay keys from {self.directory}", self._key_files,
                                       lambda: load_keys(self.directory, self.platform_directory),
                                       lambda keys: f"platform serials {', '.join(keys.platform_keys)}",
                                       check_interval_seconds)

    def _key_files(self) -> list[Path]:
        paths = [self.directory / name for name in (MERCHANT_KEY_FILE, MERCHANT_SERIAL_FILE, APIV3_KEY_FILE)]
        return paths + sorted(self.platform_directory.glob("*.pem"))

    def keys(self, force: bool = False) -> WeChatPayKeys:
        return self._files.current(force)

    def platform_key(self, serial: str):
        """The platform key of this serial; an unknown serial rereads the directory once (a rotation just done)."""
        key = self.keys().platform_keys.get(serial)
        if key is None:
            key = self.keys(force=True).platform_keys.get(serial)
        return key


# --- the adapter --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JsapiPrepay:
    prepay_id: str
    pay_params: dict[str, str]  # what the 公众号 page or 小程序 hands to WeixinJSBridge / wx.requestPayment


class WeChatPayProvider:
    """Our adapter to WeChat Pay API v3. ``trade_type`` chooses what ``prepare`` opens: ``native`` (a
    ``weixin://`` code_url, shown as a QR code, becomes the order's pay URL) or, through ``prepare_jsapi``, a
    JSAPI order for a payer's openid."""

    name = "wechatpay"

    def __init__(self, keys: KeyStore, merchant_id: str, appid: str, notify_url: str,
                 api_base: str = DEFAULT_API_BASE, timeout_seconds: float = 10.0, tolerance_seconds: int = 300,
                 http: requests.Session | None = None):
        self.keys = keys
        self.merchant_id = merchant_id
        self.appid = appid
        self.notify_url = notify_url
        self.api_base = api_base.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.tolerance_seconds = tolerance_seconds
        self.http = http or requests.Session()

    # --- signed HTTP ----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None, signed_answer: bool = True,
              absolute_url: str | None = None) -> tuple[int, bytes]:
        url = absolute_url or self.api_base + path
        parts = urlsplit(url)
        signed_path = parts.path + (f"?{parts.query}" if parts.query else "")
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        keys = self.keys.keys()
        headers = {"Authorization": authorization(self.merchant_id, keys.merchant_serial, keys.merchant_private_key,
                                                  method, signed_path, text),
                   "Accept": "application/json", "User-Agent": "credence-payments"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            answer = self.http.request(method, url, data=text.encode("utf-8") if body is not None else None,
                                       headers=headers, timeout=self.timeout_seconds)
        except requests.Timeout:
            raise ProviderError("TIMEOUT", f"WeChat Pay did not answer {method} {parts.path} in "
                                f"{self.timeout_seconds} s.", retryable=True) from None
        except requests.RequestException as error:
            raise ProviderError("NETWORK", f"WeChat Pay could not be reached: {type(error).__name__}.",
                                retryable=True) from None
        if answer.status_code >= 500:
            raise ProviderError(self._code(answer.content) or "SYSTEM_ERROR", f"WeChat Pay answered "
                                f"{answer.status_code} to {method} {parts.path}.", retryable=True)
        if answer.status_code >= 400:
            code = self._code(answer.content) or f"HTTP_{answer.status_code}"
            message = self._message(answer.content) or f"WeChat Pay refused {method} {parts.path}."
            try:
                if signed_answer:
                    self._verify_answer(answer)
            except ProviderError:
                # a refusal WeChat Pay did not sign (it may not sign a SIGN_ERROR) is reported but never acted on:
                # the codes we act on are not believed, and nothing is given up for good on its word
                if code in ACTED_ON_CODES:
                    raise
                raise ProviderError(code, f"{message} (an unsigned answer)", retryable=True) from None
            raise ProviderError(code, message, retryable=code in RETRYABLE_CODES)
        if signed_answer:
            self._verify_answer(answer)
        return answer.status_code, answer.content

    def _verify_answer(self, answer: requests.Response) -> None:
        """An answer is believed only when WeChat Pay's signature over it verifies (a forged or altered answer is
        not acted on; asking again later may reach the real one)."""
        timestamp, nonce = header(answer.headers, HEADER_TIMESTAMP), header(answer.headers, HEADER_NONCE)
        signature, serial = header(answer.headers, HEADER_SIGNATURE), header(answer.headers, HEADER_SERIAL)
        key = self.keys.platform_key(serial) if serial else None
        if (key is None or not timestamp or not nonce or not signature
                or not rsa_verify(key, response_message(timestamp, nonce, answer.content), signature)):
            raise ProviderError("INVALID_RESPONSE_SIGNATURE", "WeChat Pay's answer is not signed by a platform key "
                                "we trust; it was not believed.", retryable=True)
        if not domain.timestamp_is_fresh(timestamp, datetime.now(PROVIDER_ZONE), self.tolerance_seconds):
            raise ProviderError("STALE_RESPONSE", "WeChat Pay's answer was signed too long ago; it was not "
                                "believed.", retryable=True)

    @staticmethod
    def _json(content: bytes) -> dict:
        try:
            document = json.loads(content) if content else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            return {}
        return document if isinstance(document, dict) else {}

    def _code(self, content: bytes) -> str | None:
        code = self._json(content).get("code")
        return code if isinstance(code, str) else None

    def _message(self, content: bytes) -> str | None:
        message = self._json(content).get("message")
        return message[:200] if isinstance(message, str) else None

    # --- PaymentProvider ------------------------------------------------------------------------------

    def verify_notification(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> Notification:
        return verify_notification(self, raw_body, headers, now)

    def _order_body(self, order_number: str, amount_fen: int, description: str, expires_at: datetime) -> dict:
        return {"appid": self.appid, "mchid": self.merchant_id, "description": description[:127],
                "out_trade_no": order_number,
                "time_expire": expires_at.astimezone(PROVIDER_ZONE).isoformat(timespec="seconds"),
                "notify_url": self.notify_url, "amount": {"total": amount_fen, "currency": domain.CURRENCY}}

    def prepare(self, order_number, amount_fen, description, expires_at) -> str:
        """A Native order: its ``code_url`` (shown as a QR code the payer scans in WeChat) is the pay URL. A
        provider that cannot be reached is the payer's "try again in a moment" (503), and nothing is written."""
        try:
            _status, content = self._call("POST", "/v3/pay/transactions/native",
                                          self._order_body(order_number, amount_fen, description, expires_at))
        except ProviderError as error:
            raise ServiceUnavailable("payment_provider_unavailable", f"WeChat Pay could not open the order "
                                     f"({error.code}); try again in a moment.") from None
        code_url = self._json(content).get("code_url")
        if not isinstance(code_url, str) or not code_url:
            raise ServiceUnavailable("payment_provider_unavailable", "WeChat Pay answered without a code_url.")
        return code_url

    def prepare_jsapi(self, order_number: str, amount_fen: int, description: str, expires_at: datetime,
                      openid: str) -> JsapiPrepay:
        """A JSAPI order for a payer known by their openid (公众号 or 小程序), and the signed parameters the page
        hands to ``WeixinJSBridge.invoke('getBrandWCPayRequest', …)`` / ``wx.requestPayment``."""
        body = {**self._order_body(order_number, amount_fen, description, expires_at), "payer": {"openid": openid}}
        _status, content = self._call("POST", "/v3/pay/transactions/jsapi", body)
        prepay_id = self._json(content).get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise ProviderError("INVALID_RESPONSE", "WeChat Pay answered without a prepay_id.", retryable=True)
        return JsapiPrepay(prepay_id, self.jsapi_pay_params(prepay_id))

    def jsapi_pay_params(self, prepay_id: str, timestamp: str | None = None, nonce: str | None = None) -> dict:
        """Signed with the merchant key over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
        timestamp, nonce = timestamp or str(int(time.time())), nonce or secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        message = f"{self.appid}\n{timestamp}\n{nonce}\n{package}\n".encode()
        return {"appId": self.appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package,
                "signType": "RSA", "paySign": rsa_sign(self.keys.keys().merchant_private_key, message)}

    def query(self, order_number) -> ProviderTrade | None:
        path = (f"/v3/pay/transactions/out-trade-no/{quote(order_number, safe='')}?"
                + urlencode({"mchid": self.merchant_id}))
        try:
            _status, content = self._call("GET", path)
        except ProviderError as error:
            if error.code == "ORDER_NOT_EXIST":
                return None
            raise
        return self._trade(self._json(content))

    @staticmethod
    def _trade(document: dict) -> ProviderTrade:
        amount = document.get("amount") if isinstance(document.get("amount"), dict) else {}
        total = amount.get("total")
        paid_at = None
        if isinstance(document.get("success_time"), str):
            try:
                paid_at = datetime.fromisoformat(document["success_time"])
            except ValueError:
                paid_at = None
        state = str(document.get("trade_state") or "")
        if state not in ("NOTPAY", "SUCCESS", "CLOSED", "REFUND", "USERPAYING", "PAYERROR", "REVOKED"):
            raise ProviderError("INVALID_RESPONSE", f"WeChat Pay answered an unknown trade_state {state!r}.",
                                retryable=True)
        if not domain.is_whole_fen(total):
            raise ProviderError("INVALID_RESPONSE", "WeChat Pay answered a trade without a whole amount in fen.",
                                retryable=True)
        return ProviderTrade(str(document.get("out_trade_no") or ""), state, document.get("transaction_id") or None,
                             total, str(amount.get("currency") or domain.CURRENCY), paid_at)

    def close(self, order_number) -> ProviderTrade | None:
        """Close at WeChat Pay, then ask how the trade stands: a payment that won the race (``ORDERPAID``) is
        seen and credited instead of lost."""
        try:
            self._call("POST", f"/v3/pay/transactions/out-trade-no/{quote(order_number, safe='')}/close",
                       {"mchid": self.merchant_id})
        except ProviderError as error:
            if error.code not in ("ORDERPAID", "ORDER_CLOSED", "ORDER_NOT_EXIST"):
                raise
        return self.query(order_number)

    def refund(self, refund_number, order_number, transaction_id, amount_fen) -> ProviderRefund:
        """Once per ``out_refund_no`` however often it is sent: WeChat Pay answers a repeat with the same refund.
        The answer is usually ``PROCESSING``; ``SUCCESS`` arrives in the refund notification (or a later repeat)."""
        trade = self.query(order_number)
        if trade is None or not trade.paid:
            raise ProviderError("TRADE_NOT_PAID", "WeChat Pay has no paid trade to refund.", retryable=False)
        _status, content = self._call("POST", "/v3/refund/domestic/refunds", {
            "transaction_id": transaction_id, "out_refund_no": refund_number, "notify_url": self.notify_url,
            "amount": {"refund": amount_fen, "total": trade.amount_fen, "currency": domain.CURRENCY}})
        document = self._json(content)
        status, refund_id = document.get("status"), document.get("refund_id")
        if status not in ("SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL") or not isinstance(refund_id, str):
            raise ProviderError("INVALID_RESPONSE", "WeChat Pay's refund answer has no status or refund_id.",
                                retryable=True)
        return ProviderRefund(refund_number, refund_id, status)

    def refund_status(self, refund_number: str) -> ProviderRefund | None:
        """How a refund stands at WeChat Pay (查询单笔退款, ``GET /v3/refund/domestic/refunds/{out_refund_no}``):
        asked for a refund still PROCESSING whose notification has not come. None when WeChat Pay has no such refund
        (a signed ``RESOURCE_NOT_EXISTS``)."""
        try:
            _status, content = self._call("GET", f"/v3/refund/domestic/refunds/{quote(refund_number, safe='')}")
        except ProviderError as error:
            if error.code == "RESOURCE_NOT_EXISTS" and not error.retryable:
                return None
            raise
        document = self._json(content)
        status, refund_id = document.get("status"), document.get("refund_id")
        amount = document.get("amount") if isinstance(document.get("amount"), dict) else {}
        if (status not in ("SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL") or not isinstance(refund_id, str)
                or document.get("out_refund_no") != refund_number or not domain.is_whole_fen(amount.get("refund"))):
            raise ProviderError("INVALID_RESPONSE", "WeChat Pay's refund query answer has no status, refund_id, "
                                "out_refund_no or amount.", retryable=True)
        return ProviderRefund(refund_number, refund_id, status, amount["refund"])

    def statement(self, day: date) -> list[StatementLine]:
        """The trade bill (交易账单, bill_type ALL) of a Beijing day: its download is checked against the SHA1
        WeChat Pay announces for it, then each payment (交易状态 SUCCESS, by 微信订单号) and each refund (REFUND, by
        our 商户退款单号) becomes a line."""
        _status, content = self._call("GET", "/v3/bill/tradebill?" + urlencode(
            {"bill_date": day.isoformat(), "bill_type": "ALL"}))
        announced = self._json(content)
        download_url, digest = announced.get("download_url"), announced.get("hash_value")
        if not isinstance(download_url, str) or not isinstance(digest, str):
            raise ProviderError("INVALID_RESPONSE", "WeChat Pay's bill answer has no download_url.", retryable=True)
        if urlsplit(download_url).netloc != urlsplit(self.api_base).netloc:
            raise ProviderError("INVALID_RESPONSE", "WeChat Pay's bill is offered from another host.",
                                retryable=False)
        _status, bill = self._call("GET", "", signed_answer=False, absolute_url=download_url)
        if not secrets.compare_digest(hashlib.sha1(bill).hexdigest(), digest.lower()):  # noqa: S324 (documented)
            raise ProviderError("BILL_HASH_MISMATCH", "The downloaded bill does not match its announced SHA1.",
                                retryable=True)
        return parse_trade_bill(bill)


BILL_COLUMNS = ("交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
                "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号",
                "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
                "手续费", "费率", "订单金额", "申请退款金额", "费率备注")


def parse_trade_bill(content: bytes) -> list[StatementLine]:
    """An ALL trade bill: a header row, one row per payment or refund (each field written with a leading
    backquote), then a summary header and row, which are not lines."""
    text = content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0][:len(BILL_COLUMNS)] != list(BILL_COLUMNS)[:len(rows[0])]:
        raise ProviderError("INVALID_BILL", "The trade bill does not start with the documented header.",
                            retryable=False)
    column = {name: index for index, name in enumerate(rows[0])}
    lines = []
    for row in rows[1:]:
        if not row or not row[0].startswith("`"):
            break  # the summary starts (总交易单数,…)
        value = {name: row[index].lstrip("`").strip() for name, index in column.items() if index < len(row)}
        try:
            if value["交易状态"] == "SUCCESS":
                lines.append(StatementLine("payment", value["微信订单号"], value["商户订单号"],
                                           yuan_to_fen(value["订单金额"] or value["应结订单金额"])))
            elif value["交易状态"] == "REFUND":
                lines.append(StatementLine("refund", value["商户退款单号"], value["商户订单号"],
                                           yuan_to_fen(value["申请退款金额"] or value["退款金额"])))
        except (KeyError, ValueError) as error:
            raise ProviderError("INVALID_BILL", f"A trade bill row could not be read: {error}",
                                retryable=False) from None
    return lines


# --- notifications ------------------------------------------------------------------------------------

TRANSACTION_EVENTS = ("TRANSACTION.SUCCESS",)
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")


def verify_notification(provider: WeChatPayProvider, raw_body: bytes, headers: Mapping[str, str],
                        now: datetime) -> Notification:
    """Signature (by the platform key the serial names), then freshness, then the resource decrypted with the
    APIv3 key, then its shape. Nothing in the body is read before the signature verifies."""
    timestamp, nonce = header(headers, HEADER_TIMESTAMP), header(headers, HEADER_NONCE)
    signature, serial = header(headers, HEADER_SIGNATURE), header(headers, HEADER_SERIAL)
    if (not timestamp or not nonce or not signature or not serial or len(nonce) > 64 or not nonce.isascii()
            or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12 or len(serial) > 64):
        raise Unauthorized("invalid_signature", "The notification's Wechatpay-* signature headers are missing.")
    signature_type = header(headers, HEADER_SIGNATURE_TYPE)
    if signature_type is not None and signature_type != AUTH_SCHEMA:
        raise Unauthorized("unsupported_signature_type", f"The notification is signed {signature_type[:40]!r}; "
                           f"only {AUTH_SCHEMA} is accepted.")
    key = provider.keys.platform_key(serial)
    if key is None:
        raise Unauthorized("unknown_platform_serial", f"No WeChat Pay platform key with serial {serial[:64]!r} is "
                           "configured; add it to the platform keys.")
    if not rsa_verify(key, response_message(timestamp, nonce, raw_body), signature):
        raise Unauthorized("invalid_signature", "The notification's signature does not verify with WeChat Pay's "
                           "platform key.")
    if not domain.timestamp_is_fresh(timestamp, now, provider.tolerance_seconds):
        raise Unauthorized("stale_notification", f"The notification was signed more than "
                           f"{provider.tolerance_seconds} s from now; it may be a replay.")
    try:
        document = json.loads(raw_body)
        resource = document["resource"]
        event_type = document["event_type"]
        if not isinstance(resource, dict) or not isinstance(event_type, str):
            raise TypeError
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError):
        raise BadRequest("malformed_notification", "The notification is not WeChat Pay's JSON with a "
                         "resource.") from None
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise BadRequest("undecryptable_resource", "The notification's resource is not AEAD_AES_256_GCM.")
    try:
        plain = decrypt_resource(provider.keys.keys().apiv3_key, str(resource.get("nonce") or ""),
                                 resource.get("associated_data"), str(resource.get("ciphertext") or ""))
        content = json.loads(plain)
        if not isinstance(content, dict):
            raise TypeError
    except (InvalidTag, ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise BadRequest("undecryptable_resource", "The notification's resource does not decrypt with our APIv3 "
                         "key (or is not JSON once decrypted).") from None
    if event_type in REFUND_EVENTS:
        return _refund_notification(provider, nonce, content)
    if event_type not in TRANSACTION_EVENTS:
        raise BadRequest("unexpected_event_type", f"WeChat Pay event {event_type[:40]!r} is not one we handle.")
    amount = content.get("amount") if isinstance(content.get("amount"), dict) else {}
    total, currency = amount.get("total"), amount.get("currency")
    fields = (content.get("mchid"), content.get("out_trade_no"), content.get("transaction_id"),
              content.get("trade_state"))
    if not all(isinstance(f, str) and 0 < len(f) <= 64 for f in fields):
        raise BadRequest("malformed_notification", "The transaction lacks mchid, out_trade_no, transaction_id or "
                         "trade_state.")
    if not domain.is_whole_fen(total) or not isinstance(currency, str):
        raise BadRequest("malformed_amount", "The notification's amount must be a whole number of fen with a "
                         "currency.")
    return Notification(provider.name, nonce, *fields, total, currency, _time(content.get("success_time")))


def _time(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _refund_notification(provider: WeChatPayProvider, nonce: str, content: dict) -> Notification:
    amount = content.get("amount") if isinstance(content.get("amount"), dict) else {}
    fields = (content.get("mchid"), content.get("out_trade_no"), content.get("transaction_id"),
              content.get("out_refund_no"), content.get("refund_id"), content.get("refund_status"))
    if not all(isinstance(f, str) and 0 < len(f) <= 64 for f in fields):
        raise BadRequest("malformed_notification", "The refund lacks mchid, out_trade_no, transaction_id, "
                         "out_refund_no, refund_id or refund_status.")
    if not domain.is_whole_fen(amount.get("refund")):
        raise BadRequest("malformed_amount", "The refund's amount must be a whole number of fen.")
    mchid, order_number, transaction_id, refund_number, refund_id, status = fields
    return Notification(provider.name, nonce, mchid, order_number, transaction_id, "REFUND", amount["refund"],
                        domain.CURRENCY, _time(content.get("success_time")), refund_number=refund_number,
                        provider_refund_id=refund_id, refund_status=status)

