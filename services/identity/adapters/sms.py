"""Sending text messages.

``dev`` keeps them in the identity database where tests and ``make demo`` read them (development only).
``webhook`` and ``tencent_sms`` queue them in the same transaction as the code, and a dispatcher in the service
(``services.identity.dependencies.Sms``) claims due texts and hands each to the adapter's one step that differs,
delivering one text: ``webhook`` posts it, signed, to the operator's SMS gateway; ``tencent_sms`` sends its approved
template through Tencent Cloud SMS (services/identity/adapters/tencent_sms.py). The request path never waits on
the network, so a request for a registered number looks exactly like one for an unknown number, and a gateway
outage delays texts instead of failing requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import requests
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.security.masking import mask_mobile
from services.identity.models import DevSmsMessage, SmsQueue

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
