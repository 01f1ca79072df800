"""Sending text messages.

``dev`` keeps them in the identity database where tests and ``make demo`` read them (development only).
``webhook`` queues them in the same transaction as the code, and a dispatcher in the service posts them,
signed, to the operator's SMS gateway: the request path never waits on the network, so a request for a
registered number looks exactly like one for an unknown number, and a gateway outage delays texts
instead of failing requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta

import eventlet
import requests
from nameko.extensions import DependencyProvider
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credence_common.config import adapter_refusal
from credence_common.crypto import DecryptionError
from credence_common.db import Database
from credence_common.events import utcnow
from credence_common.masking import mask_mobile
from services.identity.models import DevSmsMessage, SmsQueue

log = logging.getLogger(__name__)
GIVE_UP_AFTER = timedelta(minutes=10)  # a code is worthless after five minutes anyway


class DevSms:
    readable = True

    def __init__(self, keys):
        self._keys = keys  # the Protection provider: its keys are set up by the time a text is sent

    def send(self, session, mobile: str, mobile_index: str, text: str) -> None:
        # encrypted like every copy of a code that must be read back (usecases.dev_sms_messages decrypts)
        session.add(DevSmsMessage(mobile_index=mobile_index, body=self._keys.protection.encrypt(text),
                                  sent_at=utcnow()))
        log.info("dev SMS to %s stored", mask_mobile(mobile))


class QueuedSms:
    readable = False

    def __init__(self, protection):
        self.protection = protection

    def send(self, session, mobile: str, mobile_index: str, text: str) -> None:
        now = utcnow()
        session.add(SmsQueue(mobile_encrypted=self.protection.encrypt(mobile),
                             text_encrypted=self.protection.encrypt(text), created_at=now, next_attempt_at=now,
                             attempts=0, state="pending"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
        elif self.kind == "webhook":
            self.url = config["SMS_WEBHOOK_URL"]
            self.secret = str(config["SMS_WEBHOOK_SECRET"])
            self.poll_interval = float(config.get("SMS_POLL_INTERVAL", 1.0))
            protection = next(d for d in self.container.dependencies if type(d).__name__ == "Protection")
            self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
            self._protection_provider = protection
            self.adapter = None  # built in start(), once the protection keys are set up
        else:
            raise ValueError(f"SMS_ADAPTER must be 'dev' or 'webhook', not {self.kind!r}")

    def start(self):
        if self.kind == "webhook":
            self.adapter = QueuedSms(self._protection_provider.protection)
            self._running = True
            self.container.spawn_managed_thread(self._dispatch_forever, identifier="identity.sms_dispatcher")

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

    def dispatch_once(self, limit: int = CLAIM_SIZE) -> int:
        now = utcnow()
        protection = self.adapter.protection
        claimed = claim_due_texts(self.database.engine, now, limit)
        with Session(self.database.engine) as session:
            due = session.scalars(select(SmsQueue).where(SmsQueue.message_id.in_(claimed))
                                  .order_by(SmsQueue.message_id)).all() if claimed else []
            work = []
            for m in due:
                try:
                    work.append((m.message_id, m.created_at, protection.decrypt(m.mobile_encrypted),
                                 protection.decrypt(m.text_encrypted)))
                except DecryptionError:  # its key was removed: one lost text must not stop all the others
                    work.append((m.message_id, m.created_at, None, None))
        outcomes = {}
        for message_id, created_at, mobile, text in work:
            if mobile is None or now - created_at > GIVE_UP_AFTER:
                outcomes[message_id] = "expired"
                continue
            body = json.dumps({"to": f"+86{mobile}", "text": text}, ensure_ascii=False).encode()
            try:
                response = requests.post(self.url, data=body, timeout=5, headers={
                    "Content-Type": "application/json", "X-Credence-Signature": sign(self.secret, body)})
                response.raise_for_status()
                outcomes[message_id] = "sent"
            except requests.RequestException:
                log.warning("SMS gateway refused a text to %s; will retry", mask_mobile(mobile))
                outcomes[message_id] = "retry"
        with Session(self.database.engine) as session, session.begin():
            for message_id, outcome in outcomes.items():
                message = session.get(SmsQueue, message_id)
                message.attempts += 1
                if outcome == "retry":
                    message.next_attempt_at = now + timedelta(seconds=min(2 ** message.attempts, 60))
                else:
                    message.state = outcome
                    message.text_encrypted = ""  # the code in it is needed no longer: nothing to read back
        return sum(1 for outcome in outcomes.values() if outcome == "sent")
