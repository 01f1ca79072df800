"""The identity service's nameko DependencyProviders: configuration in, adapters and sessions out.

``IdentityDatabase`` (the unit of work, which knows ``CommitThenRefuse``), ``Protection`` (the data keys),
``IdentityVerifier`` (``IDENTITY_VERIFIER``), ``DegreeRegistry`` (``DEGREE_REGISTRY``) and ``Sms`` (``SMS_ADAPTER``,
with the dispatcher of queued texts and the puller of the vendor's receipts)."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import timedelta

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.config import adapter_refusal, is_production
from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import Database, UnitOfWork
from credence_common.security.crypto import DecryptionError, KeyRing
from services.identity.adapters.degree_registry import REGISTRIES, SandboxDegreeRegistry, http_registry
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.adapters.sms import (
    CLAIM_SIZE,
    GIVE_UP_AFTER,
    QUEUED_ADAPTERS,
    SMS_TEXTS,
    Delivery,
    DevSms,
    QueuedSms,
    WebhookDelivery,
    claim_due_texts,
)
from services.identity.adapters.verifier import VERIFIERS
from services.identity.models import SmsQueue, SmsReceipt
from services.identity.usecases import CommitThenRefuse

log = logging.getLogger(__name__)


class IdentityUnitOfWork(UnitOfWork):
    """The platform's unit of work, plus identity's one exception to "a refusal rolls everything back".

    Some refusals must keep what the call wrote, or the guessing limits would count nothing: a failed sign-in
    is counted (and locks the name at the limit), a wrong one-time code burns a try, a used-up code stays used
    up, a replayed refresh token has ended every session, a refused registry check stays booked against the
    day's limit. The use case raises ``CommitThenRefuse(refusal)``; here the transaction commits as if the call
    had succeeded, and then the refusal is raised, as any other refusal is."""

    @contextlib.contextmanager
    def transaction(self):
        refusal = None
        with super().transaction() as session:
            try:
                yield session
            except CommitThenRefuse as kept:
                refusal = kept.refusal
        if refusal is not None:
            raise refusal


class IdentityDatabase(Database):
    """``Database`` whose unit of work knows ``CommitThenRefuse``."""

    def get_dependency(self, worker_ctx):
        unit = super().get_dependency(worker_ctx)  # the platform's choices: the Idempotency-Key, the pools
        return IdentityUnitOfWork(self.engine, self.commit_signal, unit.idempotent_call, self.idempotency_ttl,
                                  self.autocommit_engine)


class Protection(DependencyProvider):
    def setup(self):
        config = self.container.config
        keyring = KeyRing.from_spec(str(config["IDENTITY_DATA_KEYS"]), str(config["IDENTITY_DATA_ACTIVE_KEY_ID"]))
        self.protection = PersonalDataProtection(keyring, str(config["IDENTITY_INDEX_KEY"]))

    def get_dependency(self, worker_ctx):
        return self.protection


class IdentityVerifier(DependencyProvider):
    def setup(self):
        kind = self.container.config.get("IDENTITY_VERIFIER", "sandbox")
        if kind not in VERIFIERS:
            raise ValueError(f"IDENTITY_VERIFIER must be one of {sorted(VERIFIERS)}, not {kind!r}")
        refusal = adapter_refusal("IDENTITY_VERIFIER", kind)  # the sandbox would confirm anyone as anyone
        if refusal:
            raise ValueError(refusal)
        self.verifier = VERIFIERS[kind](self.container.config)

    def get_dependency(self, worker_ctx):
        return self.verifier


class DegreeRegistry(DependencyProvider):
    def setup(self):
        config = self.container.config
        kind = config.get("DEGREE_REGISTRY", "sandbox")
        if kind not in REGISTRIES:
            raise ValueError(f"DEGREE_REGISTRY must be one of {', '.join(REGISTRIES)}, not {kind!r}")
        if kind == "http":  # a real registry: allowed everywhere, but production insists on https
            self.registry = http_registry(config, is_production())
            return
        refusal = adapter_refusal("DEGREE_REGISTRY", kind)  # the sandbox accepts made-up degrees
        if refusal:
            raise ValueError(refusal)
        self.registry = SandboxDegreeRegistry()

    def get_dependency(self, worker_ctx):
        return self.registry


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
