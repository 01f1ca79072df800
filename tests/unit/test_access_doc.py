"""docs/access.md is generated from the gateway's routes; it must match them."""

from pathlib import Path

from gateway.access_doc import render
from gateway.api import ROUTES

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
            f"| {who} | {rate_limited} |") for line in text.splitlines()), route.name
