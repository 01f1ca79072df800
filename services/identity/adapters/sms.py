"""Sending text messages.

``dev`` keeps them in the identity database where tests and ``make demo`` read them (development only).
``webhook`` and ``tencent_sms`` queue them in the same transaction as the code, and a dispatcher in the service
claims due texts and hands each to the adapter's one step that differs, delivering one text: ``webhook`` posts it,
signed, to the operator's SMS gateway; ``tencent_sms`` sends its approved template through Tencent Cloud SMS
(services/identity/adapters/tencent_sms.py). The request path never waits on the network, so a request for a registered
number looks exactly like one for an unknown number, and a gateway outage delays texts instead of failing
requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import eventlet
import requests
from nameko.extensions import DependencyProvider
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credence_common.config import adapter_refusal
from credence_common.crypto import DecryptionError
from credence_common.db import Database
from credence_common.events import utcnow
from credence_common.masking import mask_mobile
from services.identity.models import DevSmsMessage, SmsQueue, SmsReceipt

log = logging.getLogger(__name__)
GIVE_UP_AFTER = timedelta(minutes=10)  # a code is worthless after five minutes anyway
QUEUED_ADAPTERS = ("webhook", "tencent_sms")
SMS_TEXTS = Counter(
    "credence_sms_texts_total",
    "Queued texts by outcome: sent (the vendor took it), retried (a failed attempt, tried again later), failed "
    "(refused for good), expired (given up after GIVE_UP_AFTER), delivered / undelivered (the vendor's receipt).",
    ["adapter", "outcome"])


class DevSms:
    readable = True

    def __init__(self, keys):
        self._keys = keys  # the Protection provider: its keys are set up by the time a text is sent

    def send(self, session, mobile: str, mobile_index: str, text: str, purpose: str | None = None,
             params: list[str] | None = None) -> None:
        # encrypted like every copy of a code that must be read back (usecases.dev_sms_messages decrypts)
        session.add(DevSmsMessage(mobile_index=mobile_index, body=self._keys.protection.encrypt(text),
                                  sent_at=utcnow()))
        log.info("dev SMS to %s stored", mask_mobile(mobile))


class QueuedSms:
    readable = False

    def __init__(self, protection):
        self.protection = protection

    def send(self, session, mobile: str, mobile_index: str, text: str, purpose: str | None = None,
             params: list[str] | None = None) -> None:
        """``text`` as rendered for gateways that send free text; ``purpose`` and the template ``params`` (the code
        among them, hence encrypted) for vendors that send only approved templates."""
        now = utcnow()
        session.add(SmsQueue(mobile_encrypted=self.protection.encrypt(mobile),
                             text_encrypted=self.protection.encrypt(text), created_at=now, next_attempt_at=now,
                             attempts=0, state="pending", purpose=purpose,
                             params_encrypted=None if params is None else self.protection.encrypt(json.dumps(params))))


@dataclass(frozen=True)
class Delivery:
    """What became of one attempt: ``sent``, ``retry`` (later, with backoff), ``failed`` (for good) or ``wait``
    (not attempted: the vendor's circuit breaker is open; not counted as an attempt)."""

    outcome: str
    serial_no: str | None = None
    error: str | None = None


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDelivery:
    """Posts the rendered text, signed, to the operator's SMS gateway; any failure is retried."""

    name = "webhook"

    def __init__(self, url: str, secret: str):
        self.url = url
        self.secret = secret

    def paused(self) -> bool:
        return False

    def wait_seconds(self) -> float:
        return 0.0

    def deliver(self, message_id: int, mobile: str, text: str, purpose: str | None, params) -> Delivery:
        body = json.dumps({"to": f"+86{mobile}", "text": text}, ensure_ascii=False).encode()
        try:
            response = requests.post(self.url, data=body, timeout=5, headers={
                "Content-Type": "application/json", "X-Credence-Signature": sign(self.secret, body)})
            response.raise_for_status()
            return Delivery("sent")
        except requests.RequestException as error:
            log.warning("SMS gateway refused a text to %s; will retry", mask_mobile(mobile))
            return Delivery("retry", error=type(error).__name__)


# Texts are claimed a few at a time: each claim pushes their next attempt a lease into the future, so another
# identity replica polling meanwhile skips them and no text is sent twice. A replica that dies mid-round only
# delays its claimed texts by the lease. CLAIM_SIZE texts at the gateway's 5 s timeout fit well inside it.
CLAIM_SIZE = 10
CLAIM_LEASE = timedelta(seconds=60)


def claim_due_texts(engine, now, limit: int = CLAIM_SIZE) -> list[int]:
    """Message ids of up to ``limit`` due texts, now this process's to send. The conditional UPDATE is the
    claim: of two replicas that read the same due rows, only one's update still matches each row."""
    with Session(engine) as session, session.begin():
        due = session.scalars(select(SmsQueue.message_id)
                              .where(SmsQueue.state == "pending", SmsQueue.next_attempt_at <= now)
                              .order_by(SmsQueue.message_id).limit(limit)).all()
        if not due:
            return []
        claimed = session.scalars(update(SmsQueue)
                                  .where(SmsQueue.message_id.in_(due), SmsQueue.state == "pending",
                                         SmsQueue.next_attempt_at <= now)
                                  .values(next_attempt_at=now + CLAIM_LEASE)
                                  .returning(SmsQueue.message_id)).all()
    return sorted(claimed)


class Sms(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.kind = config.get("SMS_ADAPTER", "dev")
        self._running = False
        if self.kind == "dev":
            refusal = adapter_refusal("SMS_ADAPTER", self.kind)
            if refusal:
                raise ValueError(refusal)
            self.adapter = DevSms(next((d for d in self.container.dependencies
                                        if type(d).__name__ == "Protection"), None))
        elif self.kind in QUEUED_ADAPTERS:
            self.poll_interval = float(config.get("SMS_POLL_INTERVAL", 1.0))
            if self.kind == "webhook":
                self.url = config["SMS_WEBHOOK_URL"]
                self.secret = str(config["SMS_WEBHOOK_SECRET"])
                self.delivery = WebhookDelivery(self.url, self.secret)
            else:
                from services.identity.adapters import tencent_sms  # the SDK is loaded only where it is used

                # every template, the sign name, the app id and the key are checked here: a purpose without an
                # approved template refuses the start instead of failing the candidate's text later
                self.delivery = tencent_sms.from_config(config)
                self.receipt_interval = float(config.get("SMS_TENCENT_RECEIPT_POLL_SECONDS", 10))
            protection = next(d for d in self.container.dependencies if type(d).__name__ == "Protection")
            self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
            self._protection_provider = protection
            self.adapter = None  # built in start(), once the protection keys are set up
        else:
            raise ValueError(f"SMS_ADAPTER must be 'dev', 'webhook' or 'tencent_sms', not {self.kind!r}")

    def start(self):
        if self.kind in QUEUED_ADAPTERS:
            self.adapter = QueuedSms(self._protection_provider.protection)
            self._running = True
            self.container.spawn_managed_thread(self._dispatch_forever, identifier="identity.sms_dispatcher")
            if self.kind == "tencent_sms":
                self.container.spawn_managed_thread(self._pull_receipts_forever, identifier="identity.sms_receipts")

    def stop(self):
        self._running = False

    def kill(self):
        self._running = False

    def get_dependency(self, worker_ctx):
        return self.adapter

    def _dispatch_forever(self):
        while self._running:
            try:
                sent = self.dispatch_once()
            except Exception:
                log.warning("SMS dispatch round failed", exc_info=True)
                sent = 0
            if not sent:
                eventlet.sleep(self.poll_interval)

    def _pull_receipts_forever(self):
        while self._running:
            try:
                recorded = self.pull_receipts_once()
            except Exception:
                log.warning("SMS receipt round failed", exc_info=True)
                recorded = 0
            if not recorded:
                eventlet.sleep(self.receipt_interval)

    def dispatch_once(self, limit: int = CLAIM_SIZE) -> int:
        if self.delivery.paused():  # the vendor is down: the texts wait in the queue, unclaimed and untouched
            return 0
        now = utcnow()
        protection = self.adapter.protection
        claimed = claim_due_texts(self.database.engine, now, limit)
        with Session(self.database.engine) as session:
            due = session.scalars(select(SmsQueue).where(SmsQueue.message_id.in_(claimed))
                                  .order_by(SmsQueue.message_id)).all() if claimed else []
            work = []
            for m in due:
                try:
                    params = (json.loads(protection.decrypt(m.params_encrypted))
                              if m.params_encrypted else None)
                    work.append((m.message_id, m.created_at, protection.decrypt(m.mobile_encrypted),
                                 protection.decrypt(m.text_encrypted), m.purpose, params))
                except DecryptionError:  # its key was removed: one lost text must not stop all the others
                    work.append((m.message_id, m.created_at, None, None, None, None))
        outcomes: dict[int, Delivery] = {}
        for message_id, created_at, mobile, text, purpose, params in work:
            if mobile is None or now - created_at > GIVE_UP_AFTER:
                outcomes[message_id] = Delivery("expired")
                continue
            outcomes[message_id] = self.delivery.deliver(message_id, mobile, text, purpose, params)
        with Session(self.database.engine) as session, session.begin():
            for message_id, delivery in outcomes.items():
                message = session.get(SmsQueue, message_id)
                if delivery.outcome == "wait":  # never attempted: back in the queue when the breaker may close
                    wait = self.delivery.wait_seconds()
                    message.next_attempt_at = now + timedelta(seconds=max(wait, self.poll_interval))
                    continue
                message.attempts += 1
                message.last_error = delivery.error[:80] if delivery.error else None  # a code, never a number
                if delivery.outcome == "retry":
                    message.next_attempt_at = now + timedelta(seconds=min(2 ** message.attempts, 60))
                    SMS_TEXTS.labels(self.kind, "retried").inc()
                else:
                    message.state = delivery.outcome
                    message.serial_no = delivery.serial_no
                    message.text_encrypted = ""  # the code in it is needed no longer: nothing to read back
                    message.params_encrypted = None
                    SMS_TEXTS.labels(self.kind, delivery.outcome).inc()
        return sum(1 for delivery in outcomes.values() if delivery.outcome == "sent")

    def pull_receipts_once(self) -> int:
        """Records the receipts the vendor hands out now; returns how many were new."""
        receipts = self.delivery.pull_receipts()
        if not receipts:
            return 0
        now = utcnow()
        recorded = 0
        with Session(self.database.engine) as session, session.begin():
            known = set(session.scalars(select(SmsReceipt.serial_no).where(
                SmsReceipt.serial_no.in_([r.serial_no for r in receipts]))))
            for receipt in receipts:
                if receipt.serial_no in known:  # handed out twice: recorded once
                    continue
                known.add(receipt.serial_no)
                session.add(SmsReceipt(serial_no=receipt.serial_no, status=receipt.status,
                                       description=receipt.description, received_at=receipt.received_at,
                                       recorded_at=now))
                SMS_TEXTS.labels(self.kind, "delivered" if receipt.status == "delivered" else "undelivered").inc()
                recorded += 1
        return recorded
