"""Slowing down guessing (passwords, security answers, codes) without handing attackers a way to lock
owners out or to tell registered names from unknown ones.

Two counters per attempt: one per (name, client address), strict, so a guesser is slowed at once; one
per name alone, lenient, so spreading guesses over many addresses still hits a limit while the owner,
from their own address, is rarely affected. Counters forget failures after a quiet day. Rows are
created with insert-or-ignore, so a first attempt behaves exactly like any later one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from credence_common.contracts.errors import RateLimited
from services.identity import domain
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.models import LoginThrottle

FORGET_AFTER = timedelta(hours=24)
FREE_PER_CLIENT = 4
FREE_PER_NAME = 20


def _locked_row(session: Session, key: str, now: datetime) -> LoginThrottle:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(LoginThrottle).values(login_index=key, failures=0).on_conflict_do_nothing())
    row = session.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
    if row.last_failure_at is not None and now - row.last_failure_at > FORGET_AFTER:
        row.failures, row.locked_until = 0, None
    return row


def lock(session: Session, protection: PersonalDataProtection, name: str, now: datetime) -> None:
    """Hold a row lock on ``name`` until the transaction ends (serialises work on one key)."""
    _locked_row(session, protection.index(name, "lock"), now)


@dataclass
class Guard:
    counters: list[tuple[LoginThrottle, int]]

    def refusal(self, now: datetime) -> RateLimited | None:
        waits = [int((row.locked_until - now).total_seconds()) + 1 for row, _free in self.counters
                 if row.locked_until is not None and row.locked_until > now]
        if not waits:
            return None
        wait = max(waits)
        return RateLimited("too_many_attempts", f"Too many failed attempts; try again in {wait} s.",
                           [{"field": "retry_after_seconds", "message": str(wait)}])

    def failed(self, now: datetime) -> None:
        for row, free in self.counters:
            row.failures += 1
            row.last_failure_at = now
            row.locked_until = domain.lockout_until(row.failures, now, free)

    def succeeded(self) -> None:
        """Only this address's counter is cleared: the owner signing in must not give a guesser
        elsewhere a fresh budget on the name (that one forgets after a quiet day)."""
        row, _free = self.counters[0]
        if len(self.counters) > 1:
            row.failures, row.locked_until = 0, None


def guard(session: Session, protection: PersonalDataProtection, scope: str, name: str, client_address: str | None,
          now: datetime) -> Guard:
    """``name`` is whatever is being guessed at (a login name, an account id); ``scope`` keeps the budgets
    of different actions apart only where they protect different secrets."""
    per_name = _locked_row(session, protection.index(f"{scope}|{name}", "throttle"), now)
    counters = [(per_name, FREE_PER_NAME)]
    if client_address is not None:
        per_client = _locked_row(session, protection.index(f"{scope}|{name}|{client_address}", "throttle"), now)
        counters.insert(0, (per_client, FREE_PER_CLIENT))
    return Guard(counters)
