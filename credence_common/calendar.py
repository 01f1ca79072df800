"""Working days and the authority's clock: the one owner of the Beijing time zone and of the public-holiday list.

Promises to candidates count Monday to Friday, less the public holidays an operator lists in the one setting
``PUBLIC_HOLIDAYS``: each duration is a setting of the service that owns the rule (payments'
``REFUND_PROMISE_WORKING_DAYS``; certificates' ``REPORT_DELAY_WORKING_DAYS`` and
``SHIPPING_PROMISE_WORKING_DAYS``), with its default beside that rule in the service's domain module.
tests/unit/test_calendar.py checks that nothing else spells the zone, the holiday setting or a default out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# The authority works on Beijing time: a working day starts at midnight there, not in UTC. Payment providers
# settle and issue statements by the same Beijing date.
AUTHORITY_ZONE = ZoneInfo("Asia/Shanghai")

# The one holiday list, read the same way by every service that counts working days.
HOLIDAYS_SETTING = "PUBLIC_HOLIDAYS"
# The per-service names it replaces, still read (deprecated) when PUBLIC_HOLIDAYS is empty.
DEPRECATED_HOLIDAY_SETTINGS = {"payments": "PAYMENT_HOLIDAYS", "certificates": "CERTIFICATE_HOLIDAYS"}


def business_day(moment: datetime) -> date:
    return moment.astimezone(AUTHORITY_ZONE).date()


def add_working_days(start: date, days: int, holidays: Iterable[date] = ()) -> date:
    """The date ``days`` working days after ``start``: weekends and listed public holidays do not count."""
    closed = set(holidays)
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in closed:
            remaining -= 1
    return current


def parse_holidays(text: str | None) -> tuple[date, ...]:
    """``2026-10-01,2026-10-02`` -> dates; a malformed entry stops the service at start-up."""
    if not text:
        return ()
    return tuple(date.fromisoformat(part.strip()) for part in str(text).split(",") if part.strip())


def configured_holidays(config: Mapping[str, Any], service: str) -> tuple[date, ...]:
    """The public holidays from ``PUBLIC_HOLIDAYS``; when that is empty, from the service's deprecated name
    (``PAYMENT_HOLIDAYS`` / ``CERTIFICATE_HOLIDAYS``), so a deployment that still sets the old name keeps
    its holidays."""
    text = config.get(HOLIDAYS_SETTING)
    if not text:
        text = config.get(DEPRECATED_HOLIDAY_SETTINGS[service])
    return parse_holidays(text)
