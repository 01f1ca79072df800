"""Mobile one-time codes: the rules, in plain Python.

Six digits from the operating system's secure random source, stored only as a keyed digest (six
digits are too few for an unkeyed hash), single use, bound to the number and the purpose, valid five
minutes, dead after five wrong tries, at most one a minute, and capped per day per number and per client.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

CODE_LENGTH = 6
CODE_TTL = timedelta(minutes=5)
MAX_WRONG_TRIES = 5
MAX_WRONG_TRIES_PER_DAY = 10  # per number and purpose, across however many codes were requested
RESEND_INTERVAL = timedelta(seconds=60)
DAILY_CAP_PER_MOBILE = 10
DAILY_CAP_PER_CLIENT = 30
PURPOSES = ("registration", "password_reset", "ticket_lookup", "sign_in")


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


def code_digest(key: bytes, code_id: str, mobile_index: str, purpose: str, code: str) -> str:
    message = "\x00".join((code_id, mobile_index, purpose, code)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SendRefusal:
    code: str
    message: str
    retry_after_seconds: int


def send_refusal(now: datetime, last_sent_at: datetime | None, sent_today_to_mobile: int,
                 sent_today_from_client: int) -> SendRefusal | None:
    if last_sent_at is not None and now - last_sent_at < RESEND_INTERVAL:
        wait = int((RESEND_INTERVAL - (now - last_sent_at)).total_seconds()) + 1
        return SendRefusal("code_resend_too_soon", f"A code was sent less than a minute ago; wait {wait} s.", wait)
    if sent_today_to_mobile >= DAILY_CAP_PER_MOBILE or sent_today_from_client >= DAILY_CAP_PER_CLIENT:
        until_midnight = int((start_of_day(now) + timedelta(days=1) - now).total_seconds()) + 1
        return SendRefusal("code_daily_limit", "Too many codes today; try again tomorrow.", until_midnight)
    return None


def code_is_usable(now: datetime, expires_at: datetime, wrong_tries: int, consumed_at: datetime | None) -> bool:
    return consumed_at is None and now < expires_at and wrong_tries < MAX_WRONG_TRIES


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
