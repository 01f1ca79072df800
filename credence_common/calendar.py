"""Working days: promises to candidates (refunds in 3 working days, a report 3 working days after payment,
shipping within 30) count Monday to Friday, less the public holidays an operator lists."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# The authority works on Beijing time: a working day starts at midnight there, not in UTC.
AUTHORITY_ZONE = ZoneInfo("Asia/Shanghai")


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
