"""docs/access.md is generated from the gateway's routes; it must match them."""

from pathlib import Path

from gateway.access_doc import render
from gateway.api import ROUTES
from gateway.routing import Route

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"


def test_access_doc_matches_the_routes():
    assert DOC.read_text(encoding="utf-8") == render(), "docs/access.md is stale: run `make docs`"


def test_every_route_is_documented_with_who_may_call_it():
    text = DOC.read_text(encoding="utf-8")
    for route in ROUTES:
        assert route.path in text, f"{route.method} {route.path} is missing from docs/access.md"
        who = "anyone" if "public" in route.roles else ", ".join(route.roles)
        rate_limited = "yes" if route.rate_limited else "no"
        assert f"| {route.method} | `{route.path}` |" in text
        assert any(line.startswith(f"| {route.method} | `{route.path}` |") and line.endswith(
            f"| {who} | {staff_role(route)} | {rate_limited} |") for line in text.splitlines()), route.name


def staff_role(route: Route) -> str:
    if "staff" not in route.roles or "public" in route.roles:
        return "—"
    return " or ".join(f"`{role}`" for role in route.staff_roles)


def test_every_staff_role_is_documented_with_what_it_is_for():
    from credence_common.contracts.staff_roles import DUTIES

    text = DOC.read_text(encoding="utf-8")
    for role, duty in DUTIES.items():
        assert f"| `{role}` | {duty} |" in text
