"""The authority's staff roles: which duties a staff account may perform (issue #19, separation of duties).

A staff account holds any number of these; identity keeps them (``staff_accounts.roles``), puts them in the
sign-in, the gateway's JWT carries them and the signed actor too (``Actor.staff_roles``,
credence_common/security/actors.py), and every service checks the one a staff action needs (``require_staff``). A staff
account without roles can sign in and do nothing else; the account that manages roles needs ``admin``.

The rules that no role can lift (the recorder of a result never signs it off, a third decider is neither of the
two signers) are scoring's own (services/scoring/domain/__init__.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

StaffRole = Literal["recorder", "expert", "publisher", "registrar", "finance", "support", "admin"]
STAFF_ROLES: tuple[str, ...] = get_args(StaffRole)

# What each role is for, as the operator reads it (docs/access.md, `credence staff roles --help`).
DUTIES: dict[str, str] = {
    "recorder": "records and imports scores, corrects them before release, grants exemptions",
    "expert": "signs composite results off, settles disagreements as the third decider, closes re-checks (复查)",
    "publisher": "releases a sitting's results, schedules and cancels releases",
    "registrar": "the certificate office: correction requests, revocation, reissues, production batches, mailing",
    "finance": "fees, payment orders seen and closed as staff, refunds, payment incidents, reconciliation",
    "support": "candidate help: registrations, on-site identity, prior education, transfers, older tickets, "
               "exam records; reads certificates and payment dues",
    "admin": "staff accounts and their roles, training institutions",
}
assert set(DUTIES) == set(STAFF_ROLES)


def staff_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """``roles`` in the one order of ``STAFF_ROLES``, each once; ``ValueError`` naming an unknown one."""
    wanted = set(roles)
    unknown = sorted(wanted - set(STAFF_ROLES))
    if unknown:
        raise ValueError(f"unknown staff role(s): {', '.join(unknown)}; the roles are {', '.join(STAFF_ROLES)}")
    return tuple(role for role in STAFF_ROLES if role in wanted)


def stored(roles: Iterable[str]) -> str:
    """How identity keeps them in one column: ``"recorder,expert"``."""
    return ",".join(staff_roles(roles))


def from_stored(text: str | None) -> tuple[str, ...]:
    """The roles of a stored column; one this code does not know (written by a newer release) is left out."""
    return tuple(role for role in STAFF_ROLES if role in set((text or "").split(",")))
