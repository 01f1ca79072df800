"""Issue #17, verification: what an attacker tries against public checks and verification reports, on the
platform at production limits (CHECKS_PER_NUMBER_PER_MINUTE=20, one caller per loopback address)."""

from __future__ import annotations

import re
from datetime import timedelta

import requests
from sqlalchemy import text

from credence_common.contracts.certificate_numbers import format_certificate_number
from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from tests.security.conftest import client_from, error_code

# also against the nameko gateway (GATEWAY_SERVER=nameko), on SQLite (tests/e2e/conftest.py)
ALSO_ON_THE_NAMEKO_GATEWAY = True
CHECKS = "/api/v1/certificate-checks"


def check(platform, address: str, name: str, number: str) -> requests.Response:
    return client_from(address).post(platform.gateway_url + CHECKS, json={"holder_name": name,
                                                                          "certificate_number": number}, timeout=30)


def test_guessing_names_for_a_number_from_many_addresses_does_not_lock_out_its_real_verifiers(secure_platform,
                                                                                               journey):
    """Finding 3: 25 callers each send wrong names for the journey's certificate (20 failed checks a minute of
    one number is the limit). Before the fix every check of the number then answered 429, the holder's real
    verifier's too."""
    number, name = journey["certificate"]["certificate_number"], journey["full_name"]
    attackers = [f"127.0.0.{host}" for host in range(10, 35)]
    statuses = [check(secure_platform, address, f"猜{index:02d}号", number).status_code
                for index, address in enumerate(attackers)]
    assert set(statuses) <= {404, 429} and statuses == sorted(statuses), statuses  # answers, then refusals
    assert statuses.count(429) >= 5, statuses  # at most 20 failed checks of a number a minute get an answer

    verifier = check(secure_platform, "127.0.0.40", name, number)  # the holder's employer, from elsewhere
    assert verifier.status_code == 200, verifier.text
    assert verifier.json()["result"] == "valid"

    for address in ("127.0.0.41", attackers[0]):  # a new guesser, and one who already guessed
        more = check(secure_platform, address, "猜99号", number)
        assert more.status_code == 429 and error_code(more) == "rate_limited"
    retry = check(secure_platform, attackers[0], name, number)  # a caller who guessed wrong gets no more tries
    assert retry.status_code == 429 and error_code(retry) == "rate_limited"

    # Enumeration-proof: an unknown number under the same guessing answers the same way, so the answers do
    # not tell whether a number exists.
    unknown = format_certificate_number(2026, "11", 99_999_999)
    unknown_statuses = [check(secure_platform, address, f"猜{index:02d}号", unknown).status_code
                        for index, address in enumerate(attackers)]
    assert unknown_statuses == [404] * 20 + [429] * 5, unknown_statuses
    assert error_code(check(secure_platform, "127.0.0.42", name, unknown)) == "rate_limited"


def test_a_share_code_or_report_code_shows_nothing_once_the_holder_closed_the_report_or_it_expired(
        secure_platform, journey):
    """Finding 4: a share code made before closing opened the full report (full name) afterwards, and a
    closed report still answered with the masked name, ID number and its signed document."""
    base, token = secure_platform.gateway_url, journey["candidate_token"]
    holder = requests.Session()
    holder.headers["Authorization"] = f"Bearer {token}"
    number = journey["certificate"]["certificate_number"]
    personal = [journey["full_name"], journey["verdict"]["certificate"]["program_name"],
                journey["verdict"]["certificate"]["holder_name_masked"], "resident_id_number", "身份证号"]

    def state_only(code: str, state: str) -> None:
        answer = requests.get(f"{base}/api/v1/verification-reports/{code}", timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["state"] == state and body["certificate"] is None and body["education_record"] is None
        assert body["signed_report"] is None
        page = requests.get(f"{base}/r/{code}", timeout=30)
        assert page.status_code == 200 and f'data-result="{state}"' in page.text
        for shown in (answer.text, page.text):
            assert not [item for item in personal if item in shown], shown

    made = holder.post(f"{base}/api/v1/me/verification-reports", json={"certificate_number": number}, timeout=30)
    assert made.status_code == 201, made.text
    code = made.json()["report_code"]
    shared = holder.post(f"{base}/api/v1/me/verification-reports/{code}/share-codes", json={"valid_hours": 24},
                         timeout=30)
    assert shared.status_code == 201, shared.text
    closed = holder.post(f"{base}/api/v1/me/verification-reports/{code}/closure", timeout=30)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"

    opened = requests.post(f"{base}/api/v1/shared-reports", timeout=30, json={
        "share_code": shared.json()["share_code"], "verifier_name": "张经理", "organisation": "某公司 HR",
        "purpose": "hiring"})
    assert opened.status_code == 409 and error_code(opened) == "share_code_revoked", opened.text
    assert journey["full_name"] not in opened.text
    state_only(code, "closed")
    assert "持证人关闭" in requests.get(f"{base}/r/{code}", timeout=30).text  # closed by the holder, it says
    pdf = holder.get(f"{base}/api/v1/me/verification-reports/{code}/report.pdf", timeout=30)
    assert pdf.status_code == 409 and error_code(pdf) == "report_closed"

    lapsed = holder.post(f"{base}/api/v1/me/verification-reports", json={"certificate_number": number}, timeout=30)
    assert lapsed.status_code == 201, lapsed.text
    engine = make_engine(secure_platform.env["VERIFICATION_DB_URI"])
    try:
        with engine.begin() as connection:  # thirty days on
            connection.execute(text("UPDATE verification_reports SET expires_at = :past WHERE report_code = :code"),
                               {"past": utcnow() - timedelta(minutes=1), "code": lapsed.json()["report_id"]})
    finally:
        engine.dispose()
    state_only(lapsed.json()["report_code"], "expired")


ID_LIKE = re.compile(r"[0-9Xx*]{15,18}")


def shows_at_most_the_last_four(shown: str, resident_id: str) -> bool:
    """Every ID-number-like run with a star in it is 14 stars and the last four; no part of the real number
    longer than its last four appears."""
    masked = [run for run in ID_LIKE.findall(shown) if "*" in run]
    windows = {resident_id[i:i + 5] for i in range(len(resident_id) - 4)}
    return all(run == "*" * 14 + resident_id[-4:] for run in masked) and not [w for w in windows if w in shown]


def test_no_public_answer_gives_more_than_the_last_four_of_the_id_number(secure_platform, journey):
    """Finding 8: ``110105********2690`` and a known birthday give back the whole number."""
    base, resident_id = secure_platform.gateway_url, journey["resident_id_number"]
    number, name = journey["certificate"]["certificate_number"], journey["full_name"]
    public = "*" * 14 + resident_id[-4:]
    answered = check(secure_platform, "127.0.0.50", name, number)
    assert answered.status_code == 200 and answered.json()["certificate"]["resident_id_number_masked"] == public
    page = client_from("127.0.0.51").post(f"{base}/verify", data={"holder_name": name, "certificate_number": number},
                                          timeout=30)
    assert page.status_code == 200 and public in page.text

    holder = requests.Session()
    holder.headers["Authorization"] = f"Bearer {journey['candidate_token']}"
    code = holder.post(f"{base}/api/v1/me/verification-reports", json={"certificate_number": number},
                       timeout=30).json()["report_code"]
    share = holder.post(f"{base}/api/v1/me/verification-reports/{code}/share-codes", json={},
                        timeout=30).json()["share_code"]
    by_code = requests.get(f"{base}/api/v1/verification-reports/{code}", timeout=30)
    assert by_code.json()["certificate"]["resident_id_number_masked"] == public
    assert by_code.json()["signed_report"]["document"]["certificate"]["resident_id_number_masked"] == public
    qr_page = requests.get(f"{base}/r/{code}", timeout=30)
    full = requests.post(f"{base}/api/v1/shared-reports", timeout=30, json={
        "share_code": share, "verifier_name": "张经理", "organisation": "某公司 HR", "purpose": "hiring"})
    assert full.status_code == 200 and full.json()["report"]["certificate"]["resident_id_number_masked"] == public
    for response in (answered, page, by_code, qr_page, full):
        assert response.status_code == 200, response.text
        # the certificate number is not part of the ID number, whatever digits the two may share
        assert shows_at_most_the_last_four(response.text.replace(number, ""), resident_id), response.text
