"""Who looked (issue #19 item 3), without a broker or database: what a verifier may say about themselves, how
the public form carries it, how a QR code's opening is told from a typed code, and the holder's CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from credence_common.contracts.errors import InvalidInput
from credence_common.contracts.validation import parse
from credence_common.contracts.verification import OpenSharedReport, PublicCheck
from gateway import dispatch, web
from services.verification.domain import reports

CHECK = {"holder_name": "王小明", "certificate_number": "202611000000423"}


def test_who_checks_and_why_is_optional_cleaned_and_bounded():
    assert parse(PublicCheck, CHECK).organisation is None and parse(PublicCheck, CHECK).purpose is None
    stated = parse(PublicCheck, {**CHECK, "organisation": "  某某\u202e科技\u200b  HR\n", "purpose": " \t "})
    # bidi override and zero-width space gone, white space one space, nothing left is nothing said
    assert (stated.organisation, stated.purpose) == ("某某科技 HR", None)
    assert parse(PublicCheck, {**CHECK, "purpose": "背" * 200}).purpose == "背" * 200
    for field, too_long in (("organisation", "x" * 101), ("purpose", "背" * 201)):
        with pytest.raises(InvalidInput) as refused:
            parse(PublicCheck, {**CHECK, field: too_long})
        assert refused.value.code == "invalid_input" and refused.value.details[0]["field"] == field
        assert too_long not in refused.value.message  # what was typed never goes into the answer
    with pytest.raises(InvalidInput) as nul:
        parse(PublicCheck, {**CHECK, "purpose": "hiring\u0000"})
    assert nul.value.code == "invalid_characters"
    with pytest.raises(InvalidInput):  # a share code's verifier must still say something once cleaned
        parse(OpenSharedReport, {"share_code": "X", "verifier_name": "\u200b", "organisation": "o", "purpose": "p"})


def test_the_check_form_asks_who_and_why_and_echoes_it_escaped():
    page = web.render_page("王小明", "202611000000423", "", '<script>alert(1)</script>', 'a"onfocus="x')
    assert 'name="organisation" maxlength="100"' in page and 'name="purpose" maxlength="200"' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'a"onfocus' not in page and "a&quot;onfocus=&quot;x" in page


class Limits:
    def limit(self, bucket: str, what: str) -> None:
        pass


def incoming(query: dict | None = None) -> dispatch.Incoming:
    return dispatch.Incoming(method="GET", path="/x", headers={}, remote_addr="203.0.113.9", query=query or {})


def test_the_form_sends_who_and_why_only_when_given():
    sent = []

    def public_check(request: dict, client: str) -> dict:
        sent.append((request, client))
        return {"result": "valid", "certificate": {
            "certificate_number": CHECK["certificate_number"], "holder_name_masked": "王*明",
            "resident_id_number_masked": "**************002X", "program_name": "P", "issued_on": "2026-11-23"}}

    form = "holder_name=%E7%8E%8B%E5%B0%8F%E6%98%8E&certificate_number=202611000000423"
    dispatch.verify_submit(Limits(), incoming(), form.encode(), public_check)
    dispatch.verify_submit(Limits(), incoming(), (form + "&organisation=ACME+HR&purpose=++").encode(),
                           public_check)
    answer = dispatch.verify_submit(Limits(), incoming(), (form + "&organisation=ACME&purpose=hiring").encode(),
                                    public_check)
    assert [request for request, _client in sent] == [
        CHECK, {**CHECK, "organisation": "ACME HR"}, {**CHECK, "organisation": "ACME", "purpose": "hiring"}]
    assert {client for _request, client in sent} == {"203.0.113.9"}
    assert answer.status == 200 and 'value="hiring"' in answer.body


def test_the_form_shows_a_refused_purpose_as_a_422_page():
    def public_check(request: dict, client: str) -> dict:
        return parse(PublicCheck, request)  # verification parses the batch item: too long is refused

    form = f"holder_name=x&certificate_number=202611000000423&purpose={'p' * 201}".encode()
    answer = dispatch.verify_submit(Limits(), incoming(), form, public_check)
    assert answer.status == 422 and 'data-result="not_valid"' in answer.body and "purpose" in answer.body


@pytest.mark.parametrize("query, channel", [({}, "report_code"), ({"via": "qr"}, "report_qr"),
                                            ({"via": "elsewhere"}, "report_code")])
def test_the_report_page_tells_a_scanned_qr_code_from_a_typed_code(query, channel):
    calls = []

    def call(service, method, *args):
        calls.append((service, method, *args))
        return {"report_code": "C" * 32, "kind": "certificate", "state": "closed", "message": "closed",
                "requested_at": "2026-12-01T00:00:00+00:00", "expires_at": "2026-12-31T00:00:00+00:00",
                "closed_at": "2026-12-02T00:00:00+00:00"}

    assert dispatch.report_page(Limits(), incoming(query), "C" * 32, call).status == 200
    assert calls == [("verification", "report_answer", "C" * 32, "203.0.113.9", channel)]


def test_a_reports_qr_code_leads_to_its_page_marked_and_still_verifies_offline():
    from tests.golden import make_verification_report_vectors as golden

    document = {**golden.DOCUMENT, "expires_at": "2999-01-01T00:00:00+00:00"}
    signed = reports.sign_report(golden.AUTHORITY_KEY, document)
    key = golden.AUTHORITY_KEY.public_key()
    now = datetime(2026, 12, 10, tzinfo=UTC)
    assert reports.qr_url(document["verify_url"]) == document["verify_url"] + "?via=qr"
    for scanned in (document["verify_url"], reports.qr_url(document["verify_url"])):
        assert reports.verify_report(signed, key, now, scanned).verdict == "valid"
    for other in (document["verify_url"] + "?via=qr&x=1", document["verify_url"] + "X?via=qr"):
        assert reports.verify_report(signed, key, now, other).verdict == "qr_mismatch"


def test_a_csv_cell_a_verifier_typed_cannot_start_a_formula():
    from services.verification.adapters.access_csv import _csv_cell

    assert [_csv_cell(v) for v in ("=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "HR", None, "2026-12-01")] == [
        "'=HYPERLINK(\"x\")", "'+1", "'-1", "'@SUM(A1)", "HR", "", "2026-12-01"]
