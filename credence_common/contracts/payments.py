"""RPC and HTTP schemas of the payments service. Amounts are integer fen (1 yuan = 100 fen)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from stdnum.cn import uscc

PayerKind = Literal["candidate", "institution"]
OrderStatus = Literal["created", "paid", "partially_refunded", "refunded", "closed", "expired"]
# native: a QR code (the pay_url, WeChat Pay's weixin:// code_url) the payer scans; jsapi: paying inside WeChat (a
# 公众号 page or the 小程序) with the signed parameters for wx.requestPayment
PayMethod = Literal["native", "jsapi"]
# A WeChat openid: the payer's id for one AppID (28 characters in practice; letters, digits, - and _)
OPENID_PATTERN = r"^[A-Za-z0-9_-]{6,128}$"
FEE_CODE_PATTERN = r"^[a-z][a-z0-9_]{2,31}$"


class FeeView(BaseModel):
    fee_code: str
    description: str
    amount_fen: int
    updated_at: datetime


class FeeSchedule(BaseModel):
    fees: list[FeeView]


class SetFee(BaseModel):
    """Add a fee (an exam fee, say) or change one. Changing a fee does not reprice dues already open."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=120)
    amount_fen: int = Field(ge=0, le=100_000_000, strict=True)


class OpenDue(BaseModel):
    """Another service (or staff) asks for money for one thing; the price comes from the fee schedule."""

    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(pattern=FEE_CODE_PATTERN)
    reference_id: str = Field(min_length=1, max_length=64)
    candidate_id: str = Field(min_length=1, max_length=36)
    payer_kind: PayerKind
    payer_id: str = Field(min_length=1, max_length=64)


class DueView(BaseModel):
    due_id: str
    purpose: str
    reference_id: str
    candidate_id: str
    payer_kind: PayerKind
    amount_fen: int
    status: Literal["open", "paid", "cancelled"]
    open_order_number: str | None = None
    paid_order_number: str | None = None
    refunded_fen: int = Field(default=0, description="Refunded of this due's amount (refunds that name it)")
    created_at: datetime


class DueList(BaseModel):
    dues: list[DueView]


class InvoiceDetails(BaseModel):
    """What goes on the invoice (发票): a title, and for an organisation its tax number (统一社会信用代码)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=100)
    tax_number: str | None = Field(default=None, max_length=20)

    @field_validator("tax_number")
    @classmethod
    def _valid_tax_number(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip().upper()
        if not uscc.is_valid(value):
            raise ValueError("not a valid unified social credit code (18 characters with a check character)")
        return value


class CreatePaymentOrder(BaseModel):
    """Pay one or more dues in one order. An institution pays for many of its candidates at once (代缴)."""

    model_config = ConfigDict(extra="forbid")

    due_ids: list[str] = Field(min_length=1, max_length=500)
    invoice: InvoiceDetails | None = None
    method: PayMethod = Field("native", description="native (default): answer a QR code's pay_url; jsapi: paying "
                              "inside WeChat, answer jsapi_pay_params for wx.requestPayment (needs payer_openid)")
    # only handed to WeChat Pay for this order: never stored, never logged, never answered (repr=False keeps it out
    # of any log line that prints the request)
    payer_openid: str | None = Field(None, pattern=OPENID_PATTERN, repr=False,
                                     description="method jsapi: the payer's openid for our 公众号 / 小程序 AppID")

    @model_validator(mode="after")
    def _openid_for_jsapi(self) -> CreatePaymentOrder:
        if self.method == "jsapi" and not self.payer_openid:
            raise ValueError("payer_openid is required for method jsapi")
        if self.method == "native" and self.payer_openid:
            raise ValueError("payer_openid is only for method jsapi")
        return self

    @field_validator("due_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each due may appear once")
        if any(not item or len(item) > 36 for item in value):
            raise ValueError("due ids are 1 to 36 characters")
        return value


class OrderItemView(BaseModel):
    due_id: str
    purpose: str
    reference_id: str
    candidate_id: str
    amount_fen: int


class InvoiceRecord(BaseModel):
    """The invoice (发票) of an order that asked for one: one per order, however many dues (students) it pays, for
    the order's whole amount. Numbered and issued when the order is paid; a refund shows in ``refunded_fen``
    (finance issues the red-letter invoice for it). Its payer and staff see it."""

    invoice_number: str | None = Field(default=None, description="Set when the order is paid")
    title: str
    tax_number: str | None = None
    amount_fen: int
    refunded_fen: int
    issued_at: datetime | None = None


class JsapiPayParams(BaseModel):
    """What a 公众号 page hands to ``WeixinJSBridge.invoke('getBrandWCPayRequest', …)`` or the 小程序 to
    ``wx.requestPayment`` as they are (WeChat Pay's names), signed with the merchant key."""

    appId: str  # noqa: N815 (WeChat Pay's field names)
    timeStamp: str  # noqa: N815
    nonceStr: str  # noqa: N815
    package: str
    signType: str  # noqa: N815
    paySign: str  # noqa: N815


class PaymentOrderView(BaseModel):
    order_number: str
    payer_kind: PayerKind
    amount_fen: int
    currency: str
    status: OrderStatus
    pay_url: str
    pay_method: PayMethod = "native"
    # jsapi, in the answer to opening the order (again): signed afresh each time, valid while the order is open
    jsapi_pay_params: JsapiPayParams | None = None
    refunded_fen: int
    items: list[OrderItemView]
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None = None
    ended_at: datetime | None = None
    invoice: InvoiceRecord | None = None


class StaffOrderView(PaymentOrderView):
    """The order as staff see it: with the payer and the provider transaction."""

    payer_id: str
    provider: str
    provider_transaction_id: str | None = None


class PaymentOrderList(BaseModel):
    orders: list[PaymentOrderView]


class NotificationAcknowledgement(BaseModel):
    """What we answer a provider's notification with; ``duplicate`` means it changed nothing."""

    order_number: str
    status: OrderStatus
    duplicate: bool = False


class SandboxNotification(BaseModel):
    """The sandbox provider's notification body, shaped like WeChat Pay v3's decrypted transaction resource.
    Signed (headers Sandbox-Timestamp, -Nonce, -Signature) over ``timestamp\\nnonce\\nbody\\n``."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    event_type: Literal["TRANSACTION.SUCCESS", "TRANSACTION.CLOSED"]
    mchid: str = Field(min_length=1, max_length=32)
    out_trade_no: str = Field(min_length=1, max_length=40)
    transaction_id: str = Field(min_length=1, max_length=64)
    trade_state: Literal["SUCCESS", "CLOSED"]
    amount: dict[str, int | str]
    success_time: datetime | None = None


class SandboxPayment(BaseModel):
    """Development and staging: act as the payer at the sandbox provider. ``amount_fen`` makes the sandbox
    pay a wrong amount on purpose (to see it refused)."""

    model_config = ConfigDict(extra="forbid")

    amount_fen: int | None = Field(default=None, ge=0, le=1_000_000_000, strict=True)


class SandboxPaymentOutcome(BaseModel):
    order_number: str
    provider_transaction_id: str
    notification_body: str
    notification_headers: dict[str, str]
    acknowledgement: NotificationAcknowledgement | None = None
    refused: dict[str, Any] | None = None


class RequestRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_number: str = Field(min_length=1, max_length=40)
    amount_fen: int = Field(gt=0, le=1_000_000_000, strict=True)
    reason: str = Field(min_length=1, max_length=200)
    reference_id: str | None = Field(default=None, max_length=64)
    due_id: str | None = Field(default=None, min_length=1, max_length=36,
                               description="Refund one due of the order (one student's fee out of an institution's "
                                           "order): at most that due's amount, less what was refunded of it")
    request_key: str = Field(min_length=1, max_length=64,
                             description="The caller's own key for this request: asking again with it returns "
                                         "the same refund instead of a second one")


class RefundView(BaseModel):
    refund_number: str
    order_number: str
    amount_fen: int
    reason: str
    reference_id: str | None = None
    due_id: str | None = None
    requested_by: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_error: str | None = None
    requested_at: datetime
    promised_by: date
    completed_at: datetime | None = None
    overdue: bool = False


class RefundList(BaseModel):
    refunds: list[RefundView]


class IncidentView(BaseModel):
    incident_id: int
    occurred_at: datetime
    code: str
    message: str
    actor: str
    order_number: str | None = None
    provider_transaction_id: str | None = None
    flagged: bool


class IncidentList(BaseModel):
    incidents: list[IncidentView]


class MismatchView(BaseModel):
    kind: Literal["missing_at_provider", "missing_in_credence", "amount_differs"]
    entry: Literal["payment", "refund"]
    reference: str
    order_number: str
    credence_amount_fen: int | None = None
    provider_amount_fen: int | None = None


class ReconciliationReport(BaseModel):
    day: date
    provider: str
    payments_matched: int
    refunds_matched: int
    credence_total_fen: int
    provider_total_fen: int
    mismatches: list[MismatchView]
