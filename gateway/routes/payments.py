"""The routes that forward to payments: the fee schedule, dues and orders, the provider's notifications, refunds,
incidents and reconciliation. Each handler only forwards (gateway/api.py assembles every service's table)."""

from __future__ import annotations

from credence_common.contracts.payments import (
    CreatePaymentOrder,
    DueList,
    FeeSchedule,
    FeeView,
    IncidentList,
    NotificationAcknowledgement,
    PaymentOrderList,
    PaymentOrderView,
    ReconciliationReport,
    RefundList,
    RefundView,
    RequestRefund,
    SandboxNotification,
    SandboxPayment,
    SandboxPaymentOutcome,
    SetFee,
)
from gateway.routing import ANY_SIGNED_IN, FINANCE, PAYMENT_READ, Call, Route, dump


def my_payment_orders(call: Call):
    return call.rpc.call("payments", "orders_for_payer", call.actor, "candidate", call.principal.subject)


def fee_schedule(call: Call):
    return call.rpc.call("payments", "fee_schedule")


def set_fee(call: Call):
    return call.rpc.call("payments", "set_fee", call.actor, call.params["fee_code"], dump(call.body))


def my_payment_dues(call: Call):
    return call.rpc.call("payments", "dues_for_payer", call.actor, "candidate", call.principal.subject)


def institution_payment_dues(call: Call):
    # the payer is the institution the token names, not the signed-in account (payments checks it again)
    return call.rpc.call("payments", "dues_for_payer", call.actor, "institution", call.principal.institution_id or "")


def institution_payment_orders(call: Call):
    return call.rpc.call("payments", "orders_for_payer", call.actor, "institution",
                         call.principal.institution_id or "")


def _header(call: Call, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in call.headers.items() if key.lower() == wanted), None)


def create_payment_order(call: Call):
    return call.rpc.call("payments", "create_order", call.actor, dump(call.body), _header(call, "Idempotency-Key"))


def payment_order(call: Call):
    return call.rpc.call("payments", "order", call.actor, call.params["order_number"])


def close_payment_order(call: Call):
    return call.rpc.call("payments", "close_order", call.actor, call.params["order_number"])


NOT_FORWARDED_TO_PROVIDER_HANDLING = ("authorization", "cookie")


def payment_notification(call: Call):
    from credence_common.errors import BadRequest

    try:
        text = call.raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("malformed_body", "The notification body must be UTF-8 JSON.") from None
    headers = {k: v for k, v in call.headers.items() if k.lower() not in NOT_FORWARDED_TO_PROVIDER_HANDLING}
    return call.rpc.call("payments", "handle_notification", call.params["provider"], text, headers)


def sandbox_provider_payment(call: Call):
    return call.rpc.call("payments", "sandbox_pay", call.actor, call.params["order_number"], dump(call.body))


def request_refund(call: Call):
    return call.rpc.call("payments", "request_refund", call.actor, dump(call.body))


def list_refunds(call: Call):
    return call.rpc.call("payments", "refunds", call.actor, call.query.get("overdue") in ("1", "true", "yes"),
                         call.query.get("order_number") or None)


def payment_incidents(call: Call):
    return call.rpc.call("payments", "incidents", call.actor, call.query.get("flagged") in ("1", "true", "yes"))


def payment_reconciliation(call: Call):
    return call.rpc.call("payments", "reconcile", call.actor, call.params["day"])


ROUTES: tuple[Route, ...] = (
    Route("my_payment_orders", "GET", "/api/v1/me/payment-orders", "Payment orders the candidate has to pay",
          ("candidate",), my_payment_orders, None, PaymentOrderList, tag="payments"),
    Route("fee_schedule", "GET", "/api/v1/fees", "The fee schedule (amounts in fen)", ("public",) + ANY_SIGNED_IN,
          fee_schedule, None, FeeSchedule, tag="payments"),
    Route("set_fee", "PUT", "/api/v1/fees/<fee_code>", "Add a fee or change its amount (staff; open dues keep "
          "their price)", ("staff",), set_fee, SetFee, FeeView, staff_roles=FINANCE, tag="payments"),
    Route("my_payment_dues", "GET", "/api/v1/me/payment-dues", "What the candidate has to pay, and what they paid",
          ("candidate",), my_payment_dues, None, DueList, tag="payments"),
    Route("institution_payment_dues", "GET", "/api/v1/institution/payment-dues",
          "Fees the institution pays for its candidates (待机构代缴)", ("institution",), institution_payment_dues,
          None, DueList, tag="payments"),
    Route("institution_payment_orders", "GET", "/api/v1/institution/payment-orders",
          "The institution's payment orders", ("institution",), institution_payment_orders, None, PaymentOrderList,
          tag="payments"),
    Route("create_payment_order", "POST", "/api/v1/payment-orders",
          "Open an order for one or more of your dues (an institution: many candidates at once); the same "
          "Idempotency-Key, or the same dues while the order is open, returns the same order",
          ("candidate", "institution"), create_payment_order, CreatePaymentOrder, PaymentOrderView, 201,
          tag="payments", header_params=(("Idempotency-Key", False, "Your key for this request (1-64 ASCII); "
                                          "a retry with it never opens a second order"),)),
    Route("payment_order", "GET", "/api/v1/payment-orders/<order_number>",
          "One order, with its one invoice record (its payer; staff also see the payer and the provider "
          "transaction)",
          ("candidate", "institution", "staff"), payment_order, None, PaymentOrderView, staff_roles=PAYMENT_READ,
          tag="payments"),
    Route("close_payment_order", "POST", "/api/v1/payment-orders/<order_number>/closure",
          "Close an unpaid order (its payer or staff); the provider is asked first, so a payment on its way counts",
          ("candidate", "institution", "staff"), close_payment_order, None, PaymentOrderView, staff_roles=FINANCE,
          tag="payments"),
    Route("payment_notification", "POST", "/api/v1/payments/notifications/<provider>",
          "A payment provider's asynchronous notification, signed with its private key (provider wechatpay: WeChat "
          "Pay API v3's encrypted notification, its Wechatpay-* headers; sandbox: the Sandbox-* headers). A copy of "
          "one already applied is answered 200 duplicate, so the provider stops sending it", ("public",),
          payment_notification, None, NotificationAcknowledgement, raw_body=True, max_body_bytes=64 * 1024,
          tag="payments", documented_body=SandboxNotification, replayable=False,  # nonce and transaction id
          # each provider's headers are required for that provider only (the path names it), hence optional here
          header_params=(("Wechatpay-Signature", False, "wechatpay: base64 RSA-SHA256 (SHA256-RSA2048) signature "
                          "by WeChat Pay's platform key of timestamp\\nnonce\\nbody\\n"),
                         ("Wechatpay-Timestamp", False, "wechatpay: Unix seconds; refused when more than "
                          "PAYMENT_NOTIFY_TOLERANCE_SECONDS (300) off"),
                         ("Wechatpay-Nonce", False, "wechatpay: random; the same nonce on another body is "
                          "refused"),
                         ("Wechatpay-Serial", False, "wechatpay: the serial of the platform certificate or WeChat "
                          "Pay public key (PUB_KEY_ID_…) that signed"),
                         ("Wechatpay-Signature-Type", False, "wechatpay: WECHATPAY2-SHA256-RSA2048"),
                         ("Sandbox-Timestamp", False, "sandbox: Unix seconds; refused when more than 300 s off"),
                         ("Sandbox-Nonce", False, "sandbox: random; the same nonce on another body is refused"),
                         ("Sandbox-Signature", False, "sandbox: base64 Ed25519 or RSA-SHA256 signature of "
                          "timestamp\\nnonce\\nbody\\n"),
                         ("Sandbox-Serial", False, "sandbox: which provider key signed"))),
    Route("sandbox_provider_payment", "POST", "/api/v1/sandbox-provider/orders/<order_number>/payment",
          "Development only: pay an order at the sandbox provider (it then notifies us, signed; 404 elsewhere)",
          ("candidate", "institution", "staff"), sandbox_provider_payment, SandboxPayment, SandboxPaymentOutcome,
          staff_roles=FINANCE, tag="development", development_only=True),
    Route("request_refund", "POST", "/api/v1/refunds",
          "Refund part or all of a paid order, or of one of its dues (due_id: one student's fee out of an "
          "institution's order), to the original payment path (staff; never more than was paid)",
          ("staff",), request_refund, RequestRefund, RefundView, 201, staff_roles=FINANCE, tag="payments"),
    Route("list_refunds", "GET", "/api/v1/refunds",
          "Refunds with their promised_by day (REFUND_PROMISE_WORKING_DAYS; ?overdue=true, ?order_number=; staff)",
          ("staff",),
          list_refunds, None, RefundList, staff_roles=FINANCE, tag="payments"),
    Route("payment_incidents", "GET", "/api/v1/payment-incidents",
          "Refused notifications and requests (?flagged=true: money may sit at the provider; staff)", ("staff",),
          payment_incidents, None, IncidentList, staff_roles=FINANCE, tag="payments"),
    Route("payment_reconciliation", "GET", "/api/v1/payment-reconciliations/<day>",
          "The provider's statement for a Beijing business day against our ledger, every mismatch listed (staff)",
          ("staff",), payment_reconciliation, None, ReconciliationReport, staff_roles=FINANCE, tag="payments"),
)
