"""Payments service entrypoints: thin nameko handlers that check the caller, parse the input and call the use cases
(``usecases.py``; the rules are in ``domain/``); the providers they are given are in ``dependencies.py``."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from functools import partial

from nameko.timer import Timer, timer

from credence_common.bus.consumers import consume
from credence_common.bus.entrypoints import HealthCheck, rpc
from credence_common.bus.reliable_events import reliable_event_handler
from credence_common.calendar import business_day
from credence_common.config import is_development
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import (
    BadRequest,
    Conflict,
    CredenceError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from credence_common.contracts.events import (
    CertificateAwaitingPaymentV1,
    CertificateRefundRequestedV1,
    FeeNoLongerDueV1,
    ReplacementAwaitingPaymentV1,
)
from credence_common.contracts.payments import (
    CreatePaymentOrder,
    OpenDue,
    RequestRefund,
    SandboxPayment,
    SandboxPaymentOutcome,
    SetFee,
)
from credence_common.contracts.validation import parse
from credence_common.observability.metrics import Metrics
from credence_common.persistence.db import Database
from credence_common.security.actors import Actor, require_role, require_staff
from services.payments import dependencies, domain, usecases
from services.payments.adapters.metrics import record_reconciliation
from services.payments.domain.providers import PROVIDER_ZONE, ProviderError
from services.payments.models import ProcessedEvent

log = logging.getLogger(__name__)

PAYER_KINDS = ("candidate", "institution")
FEE_CODE = re.compile(r"^[a-z][a-z0-9_]{2,31}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")
# Services that may ask for money or refunds on the bus (the gateway never passes this role).
SERVICE_CALLERS = ("certificates", "scoring", "identity", "verification")
# the staff roles (credence_common/contracts/staff_roles.py) that handle money, and those that may read what a payer
# owes and
# their orders (support answers candidates' questions about them)
MONEY_HANDLERS = ("finance",)
MONEY_READERS = ("finance", "support")


class ConfiguredTimer(Timer):
    """A timer whose interval is a setting (``setting``, in seconds; ``default`` when absent), read when the
    container starts: production runs it hourly, a test every fraction of a second."""

    def __init__(self, setting: str, default: float, **kwargs):
        self.setting, self.default = setting, default
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = float(self.container.config.get(self.setting, self.default))


configured_timer = ConfiguredTimer.decorator


def payer_of(actor: str) -> tuple[Actor, domain.Payer]:
    """Who acts (for incident records) and whom they pay as (a candidate themself, an institution account its
    institution)."""
    who = require_role(actor, "candidate", "institution")
    return who, domain.payer_of(who)


def viewer_of(actor: str | None, staff_roles: tuple[str, ...] = MONEY_READERS) -> tuple[Actor, str, str]:
    """Who acts, and as whom they see orders: ``("staff", subject)`` (staff holding one of ``staff_roles``) or the
    payer's kind and id."""
    who = require_role(actor, "candidate", "institution", "staff", staff_roles=staff_roles)
    if who.role == "staff":
        return who, "staff", who.subject
    payer = domain.payer_of(who)
    return who, payer.kind, payer.payer_id


def acting(who: Actor) -> str:
    """Who acted, for an incident record: the account (an institution's staff account, not the institution)."""
    return who.subject if who.subject.startswith(f"{who.role}:") else f"{who.role}:{who.subject}"


def require_staff_or_service(actor: str | None) -> str:
    """Staff with the ``finance`` role, or another Credence service (a signed ``{"role": "service", "subject":
    name}``)."""
    verified = require_role(actor, "staff", "service", staff_roles=MONEY_HANDLERS)
    if verified.role == "service":
        if verified.subject not in SERVICE_CALLERS:
            raise Forbidden("forbidden", "This service may not do this.")
        return f"service:{verified.subject}"
    subject = verified.subject
    return subject if subject.startswith("staff:") else f"staff:{subject}"


class PaymentsService(HealthCheck):
    name = "payments"

    db = Database()
    data_keys = dependencies.protection()  # installs the keys of the Sealed columns before the first worker runs
    outbox_relay = dependencies.outbox_relay()
    metrics = Metrics()
    payments = dependencies.Payments()

    def _refused(self, error: CredenceError, actor: str, context: usecases.IncidentContext) -> None:
        """Every refusal is kept, in its own transaction (the refused one was rolled back)."""
        with self.db.transaction() as session:
            usecases.record_incident(session, error.code, error.message, actor, context)

    def _with_one_retry(self, step):
        """A lost race (``concurrent_change``) is retried once: the second run sees the winner's result,
        so concurrent duplicates end as one effect and a calm answer."""
        try:
            return step()
        except Conflict as error:
            if error.code != "concurrent_change":
                raise
            return step()

    # --- fee schedule ---------------------------------------------------------------------------------

    # a read, asked by certificates inside a candidate's request: the caller's Idempotency-Key (which nameko carries
    # along) must not claim a record here and replay a stale schedule on the candidate's retry
    @rpc(idempotent=False)
    def fee_schedule(self) -> dict:
        with self.db.transaction() as session:
            return usecases.fee_schedule(session).model_dump(mode="json")

    @rpc
    def set_fee(self, actor: str | None, fee_code: str, change: dict) -> dict:
        staff = require_staff(actor, *MONEY_HANDLERS)
        if not isinstance(fee_code, str) or not FEE_CODE.match(fee_code):
            raise InvalidInput("invalid_fee_code", "A fee code is 3-32 lower-case letters, digits or _, starting "
                               "with a letter (e.g. exam_fee_written).")
        change = parse(SetFee, change)
        with self.db.transaction() as session:
            return usecases.set_fee(session, staff.subject, fee_code, change).model_dump(mode="json")

    # --- dues and orders ------------------------------------------------------------------------------

    @rpc
    def open_due(self, actor: str | None, request: dict) -> dict:
        require_staff_or_service(actor)
        request = parse(OpenDue, request)
        with self.db.transaction() as session:
            return usecases.open_due(session, request).model_dump(mode="json")

    @reliable_event_handler("certificates", CertificateAwaitingPaymentV1.event_type)
    def handle_certificate_awaiting_payment(self, message: dict) -> None:
        consume(self, message, CertificateAwaitingPaymentV1, ProcessedEvent, usecases.open_certificate_fee_due)

    @reliable_event_handler("certificates", ReplacementAwaitingPaymentV1.event_type)
    def handle_replacement_awaiting_payment(self, message: dict) -> None:
        consume(self, message, ReplacementAwaitingPaymentV1, ProcessedEvent, usecases.open_replacement_fee_due)

    @reliable_event_handler("certificates", FeeNoLongerDueV1.event_type)
    def handle_fee_no_longer_due(self, message: dict) -> None:
        """The due is cancelled; an open order holding it is closed at the provider first (asked, so a payment
        made meanwhile counts and certificates refunds it)."""
        consume(self, message, FeeNoLongerDueV1, ProcessedEvent,
                partial(usecases.cancel_due, provider=self.payments.provider))

    @reliable_event_handler("certificates", CertificateRefundRequestedV1.event_type)
    def handle_refund_requested(self, message: dict) -> None:
        """The refund is recorded with the event (so it is never lost); the timer submits it within seconds."""
        consume(self, message, CertificateRefundRequestedV1, ProcessedEvent,
                partial(usecases.refund_for_certificates, rules=self.payments.rules))

    @rpc
    def dues_for_payer(self, actor: str | None, payer_kind: str, payer_id: str) -> dict:
        self._check_payer_access(actor, payer_kind, payer_id)
        with self.db.transaction() as session:
            return usecases.dues_for_payer(session, payer_kind, payer_id).model_dump(mode="json")

    @rpc
    def orders_for_payer(self, actor: str | None, payer_kind: str, payer_id: str) -> dict:
        self._check_payer_access(actor, payer_kind, payer_id)
        with self.db.transaction() as session:
            return usecases.orders_for_payer(session, payer_kind, payer_id).model_dump(mode="json")

    @staticmethod
    def _check_payer_access(actor: str | None, payer_kind: str, payer_id: str) -> None:
        _who, kind, viewer_id = viewer_of(actor)
        if payer_kind not in PAYER_KINDS:
            raise InvalidInput("invalid_payer_kind", f"payer_kind must be one of {', '.join(PAYER_KINDS)}.")
        if kind != "staff" and (kind != payer_kind or viewer_id != payer_id):
            raise Forbidden("forbidden", "You may only see your own dues and payment orders.")

    @rpc
    def create_order(self, actor: str | None, request: dict, idempotency_key: str | None = None) -> dict:
        who, payer = payer_of(actor)
        request = parse(CreatePaymentOrder, request)
        if idempotency_key is not None and (not isinstance(idempotency_key, str)
                                            or not IDEMPOTENCY_KEY.match(idempotency_key)):
            raise InvalidInput("invalid_idempotency_key", "An Idempotency-Key is 1-64 printable ASCII characters.")
        context = usecases.IncidentContext(detail={"due_ids": request.due_ids[:20]})

        def step():
            with self.db.transaction() as session:
                return usecases.create_order(session, self.payments.provider, self.payments.rules, payer.kind,
                                             payer.payer_id, request, idempotency_key).model_dump(mode="json")
        try:
            return self._with_one_retry(step)
        except Forbidden as error:
            self._refused(error, acting(who), context)
            raise

    @rpc
    def order(self, actor: str | None, order_number: str) -> dict:
        _who, kind, viewer_id = viewer_of(actor)
        with self.db.transaction() as session:
            return usecases.order_for(session, kind, viewer_id, order_number)

    @rpc
    def close_order(self, actor: str | None, order_number: str) -> dict:
        who, kind, viewer_id = viewer_of(actor, MONEY_HANDLERS)
        context = usecases.IncidentContext(order_number=order_number)
        try:
            with self.db.transaction() as session:
                return usecases.close_order(session, self.payments.provider, kind, viewer_id,
                                            order_number).model_dump(mode="json")
        except ProviderError as error:
            raise ServiceUnavailable("payment_provider_unavailable", f"The payment provider could not close the "
                                     f"order now ({error.code}); try again in a moment.") from None
        except CredenceError as error:
            if error.code in usecases.FLAGGED_CODES:
                self._refused(error, acting(who), context)
            raise

    @timer(interval=10)
    def expire_orders(self) -> None:
        """Unpaid orders past their time end here; the provider is asked first, so a late payment counts."""
        now = utcnow()
        with self.db.transaction() as session:
            usecases.prune_nonces(session, now - timedelta(days=1))
            due = usecases.expired_order_numbers(session, now)
        for order_number in due:
            context = usecases.IncidentContext(order_number=order_number)
            try:
                with self.db.transaction() as session:
                    usecases.expire_order(session, self.payments.provider, order_number, now)
            except CredenceError as error:
                self._refused(error, "timer:expire_orders", context)
            except ProviderError as error:
                log.warning("could not expire %s: the provider said %s", order_number, error.code)

    # --- notifications --------------------------------------------------------------------------------

    @rpc
    def handle_notification(self, provider: str, raw_body: str, headers: dict) -> dict:
        if provider != self.payments.provider.name:
            raise NotFound("unknown_provider", f"No payment provider {provider!r} is configured.")
        if not isinstance(raw_body, str) or not isinstance(headers, dict):
            raise BadRequest("malformed_notification", "A notification is a text body and a map of headers.")
        body = raw_body.encode("utf-8")
        headers = {str(k): str(v) for k, v in headers.items()}
        context = usecases.IncidentContext()

        def step():
            with self.db.transaction() as session:
                return usecases.handle_notification(session, self.payments.provider, body, headers,
                                                    context).model_dump(mode="json")
        try:
            return self._with_one_retry(step)
        except CredenceError as error:
            self._refused(error, f"provider:{provider}", context)
            raise

    @rpc
    def sandbox_pay(self, actor: str | None, order_number: str, request: dict | None = None) -> dict:
        """Development only: be the payer at the sandbox provider. The bank then delivers its signed
        notification to us, as the real provider would by HTTP."""
        if not is_development():
            # it marks an order paid without money: the gateway does not route it outside development either, and
            # this refuses any other caller on the bus (the same answer as an unknown endpoint)
            raise NotFound("route_not_found", "No such endpoint.")
        if self.payments.bank is None:  # a real provider is configured: there is no sandbox to pay at
            raise NotFound("route_not_found", "No such endpoint.")
        who, kind, viewer_id = viewer_of(actor, MONEY_HANDLERS)
        request = parse(SandboxPayment, request or {})
        with self.db.transaction() as session:
            usecases.order_for(session, kind, viewer_id, order_number)  # yours, or staff
        try:
            trade = self.payments.bank.pay(self.payments.provider.merchant_id, order_number, request.amount_fen)
        except ProviderError as error:
            refused = Conflict("payment_refused_by_provider", f"The provider refused the payment: {error}")
            self._refused(refused, acting(who), usecases.IncidentContext(order_number=order_number))
            raise refused from None
        body, headers = self.payments.bank.notification(trade)
        outcome = {"order_number": order_number, "provider_transaction_id": trade.transaction_id,
                   "notification_body": body.decode(), "notification_headers": headers}
        try:
            outcome["acknowledgement"] = self.handle_notification("sandbox", body.decode(), headers)
        except CredenceError as error:
            outcome["refused"] = {"code": error.code, "message": error.message}
        return SandboxPaymentOutcome.model_validate(outcome).model_dump(mode="json")

    @rpc
    def incidents(self, actor: str | None, flagged_only: bool = False) -> dict:
        require_staff(actor, *MONEY_HANDLERS)
        with self.db.transaction() as session:
            return usecases.incidents(session, bool(flagged_only)).model_dump(mode="json")

    # --- refunds --------------------------------------------------------------------------------------

    @rpc
    def request_refund(self, actor: str | None, request: dict) -> dict:
        requested_by = require_staff_or_service(actor)
        request = parse(RequestRefund, request)
        context = usecases.IncidentContext()

        def step():
            with self.db.transaction() as session:
                return usecases.request_refund(session, self.payments.rules, requested_by, request, context)
        try:
            refund = self._with_one_retry(step)
        except CredenceError as error:
            self._refused(error, requested_by, context)
            raise
        self._submit_refund(refund.refund_number)  # at once; the timer retries what fails
        with self.db.transaction() as session:
            return usecases.find_refund(session, refund.refund_number).model_dump(mode="json")

    def _submit_refund(self, refund_number: str) -> None:
        with self.db.transaction() as session:
            pending = usecases.refund_to_submit(session, refund_number)
        if pending is None:
            return
        provider = self.payments.provider
        try:
            done = provider.refund(pending.refund_number, pending.order_number, pending.transaction_id,
                                   pending.amount_fen)
        except ProviderError as error:
            log.warning("refund %s not done: %s (%s)", refund_number, error.code,
                        "will retry" if error.retryable else "refused for good, flagged")
            with self.db.transaction() as session:
                usecases.refund_not_submitted(session, refund_number, error)
            return
        with self.db.transaction() as session:
            usecases.settle_refund_answer(session, provider.name, self.payments.rules, refund_number, done, utcnow())

    @timer(interval=5)
    def submit_pending_refunds(self) -> None:
        """Retries refunds the provider has not confirmed; the same refund number every time."""
        with self.db.transaction() as session:
            numbers = usecases.pending_refund_numbers(session)
        for number in numbers:
            self._submit_refund(number)

    @configured_timer("REFUND_CHECK_TICK_SECONDS", 1)
    def check_processing_refunds(self) -> None:
        """Refunds the provider accepted and is still making (WeChat Pay's PROCESSING) are asked about on their
        backoff schedule, in case the refund notification never comes. Whichever of the answer and the notification
        arrives first ends the refund; the other then changes nothing (complete_refund / fail_refund act on a pending
        refund only, in one conditional update)."""
        provider = self.payments.provider
        if not hasattr(provider, "refund_status"):  # the sandbox refunds at once: nothing is ever processing
            return
        now = utcnow()
        with self.db.transaction() as session:
            numbers = usecases.refunds_to_check(session, now)
        for number in numbers:
            self._check_refund(number)

    def _check_refund(self, refund_number: str) -> None:
        provider, rules = self.payments.provider, self.payments.rules
        try:
            found = provider.refund_status(refund_number)
        except ProviderError as error:
            log.warning("refund %s: the provider could not say how it stands (%s); asking again later",
                        refund_number, error.code)
            with self.db.transaction() as session:
                usecases.note_refund_checked(session, rules, refund_number, utcnow(), f"{error.code}: {error}")
            return
        with self.db.transaction() as session:
            usecases.settle_refund_status(session, provider.name, rules, refund_number, found, utcnow())

    @rpc
    def refunds(self, actor: str | None, overdue_only: bool = False, order_number: str | None = None) -> dict:
        require_staff_or_service(actor)
        with self.db.transaction() as session:
            return usecases.refunds(session, bool(overdue_only), order_number).model_dump(mode="json")

    # --- reconciliation -------------------------------------------------------------------------------

    @rpc
    def reconcile(self, actor: str | None, day: str) -> dict:
        require_staff_or_service(actor)
        try:
            wanted = date.fromisoformat(str(day))
        except ValueError:
            raise InvalidInput("invalid_date", "day must be a date like 2026-11-23.") from None
        try:
            with self.db.transaction() as session:
                return usecases.reconcile(session, self.payments.provider, wanted).model_dump(mode="json")
        except ProviderError as error:
            raise ServiceUnavailable("payment_provider_unavailable", f"The provider's statement for {wanted} could "
                                     f"not be read ({error.code}: {error}); try again later.") from None

    @configured_timer("PAYMENT_RECONCILE_INTERVAL_SECONDS", 3600)
    def reconcile_previous_day(self) -> None:
        """The previous Beijing day against the provider's statement, every interval once the statement is out:
        its disagreements become the metric ``credence_payments_reconciliation_mismatches`` (alerted on), and a
        run that cannot read the statement leaves ``…_last_success_timestamp_seconds`` behind (alerted on when it
        is a day old). Read-only, so every payments instance may run it."""
        now = utcnow()
        if now.astimezone(PROVIDER_ZONE).hour < self.payments.reconcile_after_hour:
            return
        day = business_day(now) - timedelta(days=1)
        try:
            with self.db.transaction() as session:
                report = usecases.reconcile(session, self.payments.provider, day)
        except ProviderError as error:
            log.warning("reconciliation of %s not done: the provider's statement could not be read (%s)", day,
                        error.code)
            return
        record_reconciliation(report)
        if report.mismatches:
            log.warning("reconciliation of %s: %d disagreement(s) with %s's statement; see credence payments "
                        "reconcile %s", day, len(report.mismatches), report.provider, day)
