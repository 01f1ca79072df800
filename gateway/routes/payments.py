"""The routes that forward to payments: the fee schedule, dues and orders, the provider's notifications, refunds,
incidents and reconciliation. Each route forwards (``Rpc``, gateway/routing.py) but the provider's notification,
handled above the table (gateway/api.py assembles every service's table)."""

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
from gateway.routing import (
    ACTOR,
    ANY_SIGNED_IN,
    BODY,
    FINANCE,
    INSTITUTION,
    PAYMENT_READ,
    SUBJECT,
    Call,
    Flag,
    Header,
    Param,
    Query,
    Route,
    Rpc,
)

NOT_FORWARDED_TO_PROVIDER_HANDLING = ("authorization", "cookie")


def payment_notification(call: Call):
    from credence_common.contracts.errors import BadRequest

    try:
        text = call.raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("malformed_body", "The notification body must be UTF-8 JSON.") from None
    headers = {k: v for k, v in call.headers.items() if k.lower() not in NOT_FORWARDED_TO_PROVIDER_HANDLING}
    return call.rpc.call("payments", "handle_notification", call.params["provider"], text, headers)


ROUTES: tuple[Route, ...] = (
    Route(name="my_payment_orders", method="GET", path="/api/v1/me/payment-orders",
          summary="Payment orders the candidate has to pay",
          roles=("candidate",), response_model=PaymentOrderList, tag="payments",
          links=(("payment_order", "order_number", "/orders/0/order_number"),
                 ("close_payment_order", "order_number", "/orders/0/order_number"),
                 ("sandbox_provider_payment", "order_number", "/orders/0/order_number")),
          handler=Rpc("payments", "orders_for_payer", ACTOR, "candidate", SUBJECT)),
    Route(name="fee_schedule", method="GET", path="/api/v1/fees",
          summary="The fee schedule (amounts in fen)",
          roles=("public",) + ANY_SIGNED_IN, response_model=FeeSchedule, tag="payments",
          links=(("set_fee", "fee_code", "/fees/0/fee_code"),),
          handler=Rpc("payments", "fee_schedule")),
    Route(name="set_fee", method="PUT", path="/api/v1/fees/<fee_code>",
          summary="Add a fee or change its amount (staff; open dues keep their price)",
          roles=("staff",), staff_roles=FINANCE, request_model=SetFee, response_model=FeeView, tag="payments",
          handler=Rpc("payments", "set_fee", ACTOR, Param("fee_code"), BODY)),
    Route(name="my_payment_dues", method="GET", path="/api/v1/me/payment-dues",
          summary="What the candidate has to pay, and what they paid",
          roles=("candidate",), response_model=DueList, tag="payments",
          handler=Rpc("payments", "dues_for_payer", ACTOR, "candidate", SUBJECT)),
    # the payer is the institution the token names, not the signed-in account (payments checks it again)
    Route(name="institution_payment_dues", method="GET", path="/api/v1/institution/payment-dues",
          summary="Fees the institution pays for its candidates (待机构代缴)",
          roles=("institution",), response_model=DueList, tag="payments",
          handler=Rpc("payments", "dues_for_payer", ACTOR, "institution", INSTITUTION)),
    Route(name="institution_payment_orders", method="GET", path="/api/v1/institution/payment-orders",
          summary="The institution's payment orders",
          roles=("institution",), response_model=PaymentOrderList, tag="payments",
          links=(("payment_order", "order_number", "/orders/0/order_number"),
                 ("close_payment_order", "order_number", "/orders/0/order_number")),
          handler=Rpc("payments", "orders_for_payer", ACTOR, "institution", INSTITUTION)),
    Route(name="create_payment_order", method="POST", path="/api/v1/payment-orders",
          summary="Open an order for one or more of your dues (an institution: many candidates at once); the same "
                  "Idempotency-Key, or the same dues while the order is open, returns the same order",
          roles=("candidate", "institution"), request_model=CreatePaymentOrder, response_model=PaymentOrderView,
          success_status=201,
          header_params=(("Idempotency-Key", False, "Your key for this request (1-64 ASCII); "
                          "a retry with it never opens a second order"),),
          tag="payments",
          links=(("payment_order", "order_number", "/order_number"),
                 ("close_payment_order", "order_number", "/order_number"),
                 ("sandbox_provider_payment", "order_number", "/order_number")),
          handler=Rpc("payments", "create_order", ACTOR, BODY, Header("Idempotency-Key"))),
    Route(name="payment_order", method="GET", path="/api/v1/payment-orders/<order_number>",
          summary="One order, with its one invoice record (its payer; staff also see the payer and the provider "
                  "transaction)",
          roles=("candidate", "institution", "staff"), staff_roles=PAYMENT_READ, response_model=PaymentOrderView,
          tag="payments",
          handler=Rpc("payments", "order", ACTOR, Param("order_number"))),
    Route(name="close_payment_order", method="POST", path="/api/v1/payment-orders/<order_number>/closure",
          summary="Close an unpaid order (its payer or staff); the provider is asked first, so a payment on its way "
                  "counts",
          roles=("candidate", "institution", "staff"), staff_roles=FINANCE, response_model=PaymentOrderView,
          tag="payments",
          handler=Rpc("payments", "close_order", ACTOR, Param("order_number"))),
    Route(name="payment_notification", method="POST", path="/api/v1/payments/notifications/<provider>",
          summary="A payment provider's asynchronous notification, signed with its private key (provider wechatpay: "
                  "WeChat Pay API v3's encrypted notification, its Wechatpay-* headers; sandbox: the Sandbox-* "
                  "headers). A copy of one already applied is answered 200 duplicate, so the provider stops sending it",
          roles=("public",), response_model=NotificationAcknowledgement, raw_body=True, max_body_bytes=64 * 1024,
          documented_body=SandboxNotification, replayable=False,  # nonce and transaction id
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
                         ("Sandbox-Serial", False, "sandbox: which provider key signed")),
          tag="payments",
          handler=payment_notification),
    Route(name="sandbox_provider_payment", method="POST", path="/api/v1/sandbox-provider/orders/<order_number>/payment",
          summary="Development only: pay an order at the sandbox provider (it then notifies us, signed; 404 elsewhere)",
          roles=("candidate", "institution", "staff"), staff_roles=FINANCE, request_model=SandboxPayment,
          response_model=SandboxPaymentOutcome, development_only=True, tag="development",
          handler=Rpc("payments", "sandbox_pay", ACTOR, Param("order_number"), BODY)),
    Route(name="request_refund", method="POST", path="/api/v1/refunds",
          summary="Refund part or all of a paid order, or of one of its dues (due_id: one student's fee out of an "
                  "institution's order), to the original payment path (staff; never more than was paid)",
          roles=("staff",), staff_roles=FINANCE, request_model=RequestRefund, response_model=RefundView,
          success_status=201, tag="payments",
          handler=Rpc("payments", "request_refund", ACTOR, BODY)),
    Route(name="list_refunds", method="GET", path="/api/v1/refunds",
          summary="Refunds with their promised_by day (REFUND_PROMISE_WORKING_DAYS; ?overdue=true, ?order_number=; "
                  "staff)",
          roles=("staff",), staff_roles=FINANCE, response_model=RefundList, tag="payments",
          links=(("payment_order", "order_number", "/refunds/0/order_number"),),
          handler=Rpc("payments", "refunds", ACTOR, Flag("overdue"), Query("order_number"))),
    Route(name="payment_incidents", method="GET", path="/api/v1/payment-incidents",
          summary="Refused notifications and requests (?flagged=true: money may sit at the provider; staff)",
          roles=("staff",), staff_roles=FINANCE, response_model=IncidentList, tag="payments",
          handler=Rpc("payments", "incidents", ACTOR, Flag("flagged"))),
    Route(name="payment_reconciliation", method="GET", path="/api/v1/payment-reconciliations/<day>",
          summary="The provider's statement for a Beijing business day against our ledger, every mismatch listed "
                  "(staff)",
          roles=("staff",), staff_roles=FINANCE, response_model=ReconciliationReport, tag="payments",
          handler=Rpc("payments", "reconcile", ACTOR, Param("day"))),
)
