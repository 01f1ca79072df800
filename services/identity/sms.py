"""Sending text messages. ``dev`` keeps them in the identity database for tests and ``make demo``;
``webhook`` posts them, signed, to an SMS gateway of the operator's choice."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import requests
from nameko.extensions import DependencyProvider

from credence_common.config import is_production
from credence_common.errors import ServiceUnavailable
from credence_common.events import utcnow
from credence_common.masking import mask_mobile
from services.identity.models import DevSmsMessage

log = logging.getLogger(__name__)


class DevSms:
    readable = True

    def send(self, session, mobile: str, mobile_index: str, text: str) -> None:
        session.add(DevSmsMessage(mobile_index=mobile_index, body=text, sent_at=utcnow()))
        log.info("dev SMS to %s stored", mask_mobile(mobile))


class WebhookSms:
    readable = False

    def __init__(self, url: str, secret: str, timeout: float = 5.0):
        self.url, self.secret, self.timeout = url, secret, timeout

    def send(self, session, mobile: str, mobile_index: str, text: str) -> None:
        body = json.dumps({"to": f"+86{mobile}", "text": text}, ensure_ascii=False).encode()
        signature = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        try:
            response = requests.post(self.url, data=body, timeout=self.timeout,
                                     headers={"Content-Type": "application/json", "X-Credence-Signature": signature})
            response.raise_for_status()
        except requests.RequestException:
            log.warning("SMS gateway refused a message to %s", mask_mobile(mobile))
            raise ServiceUnavailable("sms_unavailable", "The text message could not be sent; try again shortly.") \
                from None


class Sms(DependencyProvider):
    def setup(self):
        config = self.container.config
        kind = config.get("SMS_ADAPTER", "dev")
        if kind == "dev":
            if is_production():
                raise ValueError("SMS_ADAPTER=dev keeps codes readable; set SMS_ADAPTER=webhook in production")
            self.adapter = DevSms()
        elif kind == "webhook":
            self.adapter = WebhookSms(config["SMS_WEBHOOK_URL"], str(config["SMS_WEBHOOK_SECRET"]))
        else:
            raise ValueError(f"SMS_ADAPTER must be 'dev' or 'webhook', not {kind!r}")

    def get_dependency(self, worker_ctx):
        return self.adapter
