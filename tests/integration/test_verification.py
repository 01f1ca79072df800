"""Verification in a real container: its read model comes from certificate.issued events only."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from credence_common.contracts.certificate_numbers import format_certificate_number
from credence_common.contracts.envelope import make_envelope, utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from credence_common.contracts.events import CertificateIssuedV1, CertificateRevokedV1, CertificateSupersededV1
from credence_common.persistence.db import make_engine
from services.verification.service import VerificationService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for

NUMBER = format_certificate_number(2026, "11", 42)


def issued(number=NUMBER) -> CertificateIssuedV1:
    return CertificateIssuedV1(certificate_id="cert-1", certificate_number=number, candidate_id="cand-1",
                               ticket_number="112600000001", holder_name="王小明",
                               resident_id_number_masked="110105********002X", program_code="PSY-COUNSELLOR",
                               program_name="Psychological Counsellor (Foundation)", issued_on=date(2026, 11, 23),
                               issued_at=utcnow())


def test_public_check_answers_from_the_read_model(start_service):
    container, config = start_service(VerificationService)
    event = make_envelope(issued())
    publish_event(config["AMQP_URI"], issued(), event)
    publish_event(config["AMQP_URI"], issued(), event)
    wait_for(lambda: query(config["DB_URI"], "select count(*) from verifiable_certificates") == [(1,)],
             what="read model")
    with rpc_proxy("verification", config) as verification:
        spaced = NUMBER[:4] + " " + NUMBER[4:10] + "-" + NUMBER[10:]
        answer = verification.public_check({"holder_name": " 王小明 ", "certificate_number": spaced})
        assert answer == {"result": "valid", "certificate": {
            "certificate_number": NUMBER, "holder_name_masked": "王*明",
            "resident_id_number_masked": "**************002X", "program_code": "PSY-COUNSELLOR",
            "program_name": "Psychological Counsellor (Foundation)", "issued_on": "2026-11-23"}}

        with pytest.raises(NotFound) as wrong_name:
            verification.public_check({"holder_name": "李四", "certificate_number": NUMBER})
        unknown = format_certificate_number(2026, "11", 43)
        with pytest.raises(NotFound) as unknown_number:
            verification.public_check({"holder_name": "王小明", "certificate_number": unknown})
        assert wrong_name.value.message == unknown_number.value.message  # reveals nothing about the number
        typo = NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10)
        with pytest.raises(InvalidInput) as bad_digit:
            verification.public_check({"holder_name": "王小明", "certificate_number": typo})
        assert bad_digit.value.code == "invalid_certificate_number"
        with pytest.raises(InvalidInput):
            verification.public_check({"holder_name": "", "certificate_number": NUMBER})
    assert query(config["DB_URI"], "select count(*) from processed_events") == [(1,)]


def revoked(number=NUMBER) -> CertificateRevokedV1:
    return CertificateRevokedV1(certificate_id="cert-1", certificate_number=number, candidate_id="cand-1",
                                reason="Obtained by fraud", revoked_at=utcnow(), sequence=4)


def test_a_revoked_certificate_stops_verifying_even_when_the_revocation_overtakes_the_issue(start_service):
    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    other = format_certificate_number(2026, "11", 44)
    publish_event(config["AMQP_URI"], revoked(other))  # arrives first: retried until the issue is in
    publish_event(config["AMQP_URI"], issued(NUMBER))
    publish_event(config["AMQP_URI"], issued(other).model_copy(update={"certificate_id": "cert-2"}))
    wait_for(lambda: query(db, "select status from verifiable_certificates where certificate_number = :n",
                           n=other) == [("revoked",)], what="the early revocation applied after the issue")
    with rpc_proxy("verification", config) as verification:
        assert verification.public_check({"holder_name": "王小明", "certificate_number": NUMBER})["result"] == "valid"
        publish_event(config["AMQP_URI"], revoked(NUMBER))
        wait_for(lambda: query(db, "select status from verifiable_certificates where certificate_number = :n",
                               n=NUMBER) == [("revoked",)], what="revoked")
        publish_event(config["AMQP_URI"], issued(NUMBER))  # a late duplicate of the issue changes nothing
        wait_for(lambda: query(db, "select count(*) from processed_events") == [(5,)], what="all handled")
        for number in (NUMBER, other):
            answer = verification.public_check({"holder_name": "王小明", "certificate_number": number})
            assert answer["result"] == "revoked" and answer["certificate"]["holder_name_masked"] == "王*明"
            with pytest.raises(NotFound):  # a wrong name learns nothing, not even that it was revoked
                verification.public_check({"holder_name": "李四", "certificate_number": number})
    assert query(db, "select status from verifiable_certificates where certificate_number = :n", n=NUMBER) == [
        ("revoked",)]


def superseded(number=NUMBER) -> CertificateSupersededV1:
    return CertificateSupersededV1(certificate_id="cert-1", certificate_number=number, candidate_id="cand-1",
                                   superseded_by_certificate_id="cert-9",
                                   superseded_by_certificate_number=format_certificate_number(2026, "11", 90),
                                   reason="reissue", superseded_at=utcnow(), sequence=6)


def test_checks_are_logged_guessing_at_a_number_is_throttled_and_the_answers_do_not_tell_names_apart(
        start_service):
    container, config = start_service(VerificationService, CHECKS_PER_NUMBER_PER_MINUTE=3)
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], issued())
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    unknown = format_certificate_number(2026, "11", 43)
    right = {"holder_name": "王小明", "certificate_number": NUMBER}
    with rpc_proxy("verification", config) as verification:
        for _ in range(4):  # right answers count for nothing: the holder's verifiers are never crowded out
            assert verification.public_check(right, "10.0.0.1")["result"] == "valid"
        answers = []
        for name, number in (("李四", NUMBER), ("王小明", unknown)):
            with pytest.raises(NotFound) as refused:
                verification.public_check({"holder_name": name, "certificate_number": number}, "10.0.0.2")
            answers.append((refused.value.code, refused.value.message, refused.value.details))
        assert answers[0] == answers[1]  # wrong name and unknown number: one answer
        verification.public_check(right, "10.0.0.2")  # a caller's own mistake, under the limit, costs nothing
        for client in ("10.0.0.3", "10.0.0.4"):  # the third failure of NUMBER within a minute: the limit
            with pytest.raises(NotFound):
                verification.public_check({"holder_name": "张三", "certificate_number": NUMBER}, client)
        refusals = []
        for name, number, client in (("赵六", NUMBER, "10.0.0.5"), ("王小明", NUMBER, "10.0.0.4")):
            with pytest.raises(RateLimited) as limited:  # a wrong name; the right name from a caller who guessed
                verification.public_check({"holder_name": name, "certificate_number": number}, client)
            refusals.append(limited.value.code)
        assert refusals == ["rate_limited", "rate_limited"]
        assert verification.public_check(right, "10.0.0.6")["result"] == "valid"  # a caller who did not guess
        for name in ("赵六", "王小明"):  # an unknown number under the same guessing: the same answers
            with pytest.raises(NotFound):
                verification.public_check({"holder_name": name, "certificate_number": unknown}, "10.0.0.7")
        unknown_refusals = []
        for name in ("赵六", "王小明"):
            with pytest.raises(RateLimited) as limited:
                verification.public_check({"holder_name": name, "certificate_number": unknown}, "10.0.0.8")
            unknown_refusals.append(limited.value.code)
        assert unknown_refusals == ["rate_limited", "rate_limited"]
        with pytest.raises(InvalidInput):
            verification.public_check({"holder_name": "王小明", "certificate_number": "123"}, "10.0.0.9")
    log = query(db, "select certificate_number, outcome, client from check_log order by check_id")
    assert [(outcome, client) for _, outcome, client in log] == [
        *[("valid", "10.0.0.1")] * 4, ("no_match", "10.0.0.2"), ("no_match", "10.0.0.2"), ("valid", "10.0.0.2"),
        ("no_match", "10.0.0.3"), ("no_match", "10.0.0.4"), ("rate_limited", "10.0.0.5"),
        ("rate_limited", "10.0.0.4"), ("valid", "10.0.0.6"), ("no_match", "10.0.0.7"), ("no_match", "10.0.0.7"),
        ("rate_limited", "10.0.0.8"), ("rate_limited", "10.0.0.8"), ("invalid", "10.0.0.9")]
    assert all("王" not in str(row) for row in log)  # the name asked for is not kept


def test_a_rebuild_replays_every_event_into_the_same_read_model(start_service, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from services.verification.cli import app

    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    second = format_certificate_number(2026, "11", 44)
    publish_event(config["AMQP_URI"], revoked(second))  # early: applied only after its issue
    publish_event(config["AMQP_URI"], issued(NUMBER))
    publish_event(config["AMQP_URI"], issued(second).model_copy(update={"certificate_id": "cert-2", "sequence": 3}))
    publish_event(config["AMQP_URI"], superseded(NUMBER))
    wait_for(lambda: query(db, "select count(*) from received_events") == [(4,)], what="four events applied")
    snapshot = query(db, "select certificate_number, certificate_id, status, sequence, holder_name "
                         "from verifiable_certificates order by certificate_number")
    assert [row[2] for row in snapshot] == ["superseded", "revoked"]
    with rpc_proxy("verification", config) as verification:
        assert verification.public_check({"holder_name": "王小明", "certificate_number": NUMBER})["result"] == \
            "superseded"
    settings = tmp_path / "verification.yml"
    settings.write_text(yaml.safe_dump({"DB_URI": db}))
    engine = make_engine(db)
    try:
        with engine.begin() as connection:  # damage the read model: a rebuild must not care
            connection.exec_driver_sql("UPDATE verifiable_certificates SET status = 'valid', holder_name = 'x'")
    finally:
        engine.dispose()
    outcome = CliRunner().invoke(app, ["rebuild", "--config", str(settings)])
    assert outcome.exit_code == 0, outcome.output
    assert "replayed 4 events: 2 certificates" in outcome.output
    assert query(db, "select certificate_number, certificate_id, status, sequence, holder_name "
                     "from verifiable_certificates order by certificate_number") == snapshot


def test_a_revocation_is_the_answer_as_soon_as_verification_has_applied_it(start_service):
    """No cache between the read model and the answer: the first check after the revocation event is
    applied already says revoked. (How soon after the certificates service revokes: `make bench` prints it.)"""
    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], issued())
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(1,)], what="issued applied")
    with rpc_proxy("verification", config) as verification:
        for _ in range(3):  # warm whatever could cache
            assert verification.public_check({"holder_name": "王小明", "certificate_number": NUMBER})[
                "result"] == "valid"
        publish_event(config["AMQP_URI"], revoked())
        wait_for(lambda: query(db, "select count(*) from processed_events") == [(2,)], what="revocation applied")
        assert verification.public_check({"holder_name": "王小明", "certificate_number": NUMBER})["result"] == \
            "revoked"


def test_holders_get_signed_reports_whose_online_answer_follows_the_certificate(start_service):
    import base64

    from credence_common.security import signing
    from services.verification.domain import reports

    container, config = start_service(VerificationService, PUBLIC_BASE_URL="https://verify.example.org")
    db = config["DB_URI"]
    holder = signed_actor({"subject": "cand-1", "role": "candidate"})
    publish_event(config["AMQP_URI"], issued().model_copy(update={"sequence": 3, "level": "三级 Level 3"}))
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    with rpc_proxy("verification", config) as verification:
        with pytest.raises(NotFound):
            verification.request_report(signed_actor({"subject": "cand-2", "role": "candidate"}),
                                        {"certificate_number": NUMBER})
        report = verification.request_report(holder, {"certificate_number": NUMBER})
        code = report["report_code"]
        assert report["state"] == "valid" and len(code) == 32
        assert report["verify_url"] == f"https://verify.example.org/r/{code}"
        answer = verification.report_answer(code)
        assert answer["state"] == "valid" and answer["certificate"]["holder_name_masked"] == "王*明"
        key = verification.report_public_key()
        public_key = signing.load_public_key(key["public_key_pem"])
        assert answer["signed_report"]["key_id"] == key["key_id"]
        offline = reports.verify_report(answer["signed_report"], public_key, utcnow(), report["verify_url"])
        assert offline.verdict == "valid"
        assert answer["signed_report"]["document"]["certificate"]["level"] == "三级 Level 3"
        pdf = base64.b64decode(verification.report_pdf(holder, code))
        assert pdf.startswith(b"%PDF")
        with pytest.raises(NotFound):
            verification.report_pdf(signed_actor({"subject": "cand-2", "role": "candidate"}), code)
        for bad in ("x", code[:-1] + "!", "A" * 32):
            with pytest.raises((InvalidInput, NotFound)):
                verification.report_answer(bad)

        second = verification.request_report(holder, {"certificate_number": NUMBER})["report_code"]
        assert verification.close_report(holder, second)["state"] == "closed"
        closed = verification.report_answer(second)
        assert closed["state"] == "closed" and closed["closed_at"] is not None
        assert closed["certificate"] is None and closed["signed_report"] is None  # the state, nothing personal
        assert "王" not in str(closed) and "002X" not in str(closed)
        with pytest.raises(Conflict) as no_pdf:
            verification.report_pdf(holder, second)
        assert no_pdf.value.code == "report_closed"
        with pytest.raises(Conflict):
            verification.extend_report(holder, second)
        before = verification.report_answer(code)["expires_at"]
        extended = verification.extend_report(holder, code)["expires_at"]
        assert extended >= before
        # what is answered and downloaded after the extension is signed with the new expiry (offline checks agree)
        answered = verification.report_answer(code)["signed_report"]
        assert answered["document"]["expires_at"] == datetime.fromisoformat(extended).isoformat()
        assert reports.verify_report(answered, public_key, utcnow()).verdict == "valid"
        engine = make_engine(db)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("UPDATE verification_reports SET expires_at = '2026-01-01 00:00:00+00:00' "
                                           f"WHERE report_code = '{report['report_id']}'")  # the code's digest
        finally:
            engine.dispose()
        expired = verification.report_answer(code)
        assert expired["state"] == "expired" and expired["certificate"] is None and expired["signed_report"] is None
        with pytest.raises(Conflict) as no_pdf:
            verification.report_pdf(holder, code)
        assert no_pdf.value.code == "report_expired"
        third = verification.request_report(holder, {"certificate_number": NUMBER})["report_code"]
        publish_event(config["AMQP_URI"], revoked())
        wait_for(lambda: verification.report_answer(third)["state"] == "revoked", what="the report shows it")
        with pytest.raises(Conflict) as not_valid:
            verification.request_report(holder, {"certificate_number": NUMBER})
        assert not_valid.value.code == "certificate_not_valid"
        assert [r["state"] for r in verification.my_reports(holder)["reports"]] == ["revoked", "closed", "expired"]


def test_a_share_code_opens_the_full_report_once_and_the_holder_sees_who_looked_and_why(start_service):
    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    holder = signed_actor({"subject": "cand-1", "role": "candidate"})
    publish_event(config["AMQP_URI"], issued().model_copy(update={"sequence": 3}))
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    employer = {"verifier_name": "张经理", "organisation": "某某科技有限公司 HR", "purpose": "入职背景核查 hiring"}
    with rpc_proxy("verification", config) as verification:
        report = verification.request_report(holder, {"certificate_number": NUMBER})["report_code"]
        verification.public_check({"holder_name": "王小明", "certificate_number": NUMBER}, "10.1.1.1")
        with pytest.raises(NotFound):
            verification.create_share_code(signed_actor({"subject": "cand-2", "role": "candidate"}), report, {})
        with pytest.raises(InvalidInput):
            verification.create_share_code(holder, report, {"valid_hours": 0})
        shared = verification.create_share_code(holder, report, {"valid_hours": 48})
        code = shared["share_code"]
        assert len(code) == 32 and query(db, "select count(*) from share_codes where code_digest = :c",
                                         c=code) == [(0,)]  # only its digest is kept
        with pytest.raises(InvalidInput):
            verification.open_shared_report({"share_code": code, "verifier_name": "", "organisation": "x",
                                             "purpose": "x"})
        full = verification.open_shared_report({"share_code": code.lower(), **employer})
        assert full["holder_name"] == "王小明" and full["report"]["state"] == "valid"
        assert full["report"]["certificate"]["resident_id_number_masked"] == "**************002X"
        with pytest.raises(Conflict) as twice:
            verification.open_shared_report({"share_code": code, **employer})
        assert twice.value.code == "share_code_used"
        with pytest.raises(NotFound):
            verification.open_shared_report({"share_code": "B" * 32, **employer})

        withdrawn = verification.create_share_code(holder, report, {})
        codes = verification.revoke_share_code(holder, withdrawn["share_id"])["share_codes"]
        assert {c["share_id"]: c["state"] for c in codes} == {shared["share_id"]: "used",
                                                              withdrawn["share_id"]: "revoked"}
        with pytest.raises(Conflict) as revoked_code:
            verification.open_shared_report({"share_code": withdrawn["share_code"], **employer})
        assert revoked_code.value.code == "share_code_revoked"
        late = verification.create_share_code(holder, report, {"valid_hours": 1})
        engine = make_engine(db)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("UPDATE share_codes SET expires_at = '2026-01-01 00:00:00+00:00' "
                                           f"WHERE share_id = '{late['share_id']}'")
        finally:
            engine.dispose()
        with pytest.raises(Conflict) as expired:
            verification.open_shared_report({"share_code": late["share_code"], **employer})
        assert expired.value.code == "share_code_expired"

        looked = verification.my_accesses(holder)["accesses"]
        full_reports = [a for a in looked if a["kind"] == "full_report"]
        assert [(a["verifier_name"], a["organisation"], a["purpose"]) for a in full_reports] == [
            (employer["verifier_name"], employer["organisation"], employer["purpose"])]
        assert [a["outcome"] for a in looked if a["kind"] == "public_check"] == ["valid"]
        assert verification.my_accesses(signed_actor({"subject": "cand-2", "role": "candidate"}))["accesses"] == []
        before_closing = verification.create_share_code(holder, report, {})
        verification.close_report(holder, report)
        with pytest.raises(Conflict) as died:  # closing the report withdrew the consent the code carried
            verification.open_shared_report({"share_code": before_closing["share_code"], **employer})
        assert died.value.code == "share_code_revoked" and "王" not in died.value.message
        assert {c["share_id"]: c["state"] for c in verification.share_codes(holder)["share_codes"]}[
            before_closing["share_id"]] == "revoked"
        with pytest.raises(Conflict):
            verification.create_share_code(holder, report, {})


def test_a_certificates_report_opens_on_its_day_while_public_checks_answer_at_once(start_service):
    from datetime import timedelta

    from sqlalchemy import text

    from credence_common.calendar import business_day

    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    holder = signed_actor({"subject": "cand-1", "role": "candidate"})
    opens_on = business_day(utcnow()) + timedelta(days=3)
    publish_event(config["AMQP_URI"], issued().model_copy(update={"report_available_on": opens_on}))
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    with rpc_proxy("verification", config) as verification:
        assert verification.public_check({"holder_name": "王小明", "certificate_number": NUMBER})["result"] == "valid"
        with pytest.raises(Conflict) as early:
            verification.request_report(holder, {"certificate_number": NUMBER})
        assert early.value.code == "report_not_yet_available" and opens_on.isoformat() in early.value.message
        engine = make_engine(db)
        try:
            with engine.begin() as connection:  # three days on: as if the clock had moved
                connection.execute(text("UPDATE verifiable_certificates SET report_available_on = :today"),
                                   {"today": business_day(utcnow())})
        finally:
            engine.dispose()
        assert verification.request_report(holder, {"certificate_number": NUMBER})["state"] == "valid"
    assert query(db, "select count(*) from verification_reports") == [(1,)]


def test_a_batch_of_checks_answers_each_on_its_own_and_logs_and_limits_each(start_service):
    container, config = start_service(VerificationService, CHECKS_PER_NUMBER_PER_MINUTE="3")
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], issued())
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    right = {"holder_name": "王小明", "certificate_number": NUMBER}
    wrong = {"holder_name": "李四", "certificate_number": NUMBER}
    unknown = {"holder_name": "王小明", "certificate_number": format_certificate_number(2026, "11", 43)}
    with rpc_proxy("verification", config) as verification:
        outcomes = verification.public_checks([
            {"request": right, "client": "10.0.0.1"}, {"request": wrong, "client": "10.0.0.2"},
            {"request": unknown, "client": "10.0.0.3"}, {"request": {"holder_name": "x"}, "client": "10.0.0.4"},
            "not a check", {"request": right, "client": "10.0.0.5"}])
        assert outcomes[0]["answer"]["result"] == "valid"
        assert outcomes[1]["refusal"] == outcomes[2]["refusal"]  # wrong name and unknown number: one answer
        assert outcomes[1]["refusal"]["code"] == "certificate_not_found"
        assert outcomes[3]["refusal"]["type"] == "InvalidInput" and outcomes[4]["refusal"]["code"] == "invalid_batch"
        assert outcomes[5]["answer"]["result"] == "valid"
        # one failure of NUMBER so far (the unknown number is another number); two more wrong names reach the
        # limit of 3 failures: then a wrong name is refused, and the right name still answers
        over = verification.public_checks([
            {"request": wrong, "client": "10.0.0.6"}, {"request": wrong, "client": "10.0.0.7"},
            {"request": wrong, "client": "10.0.0.8"}, {"request": right, "client": "10.0.0.9"}])
        assert [o.get("refusal", {}).get("code") or o["answer"]["result"] for o in over] == [
            "certificate_not_found", "certificate_not_found", "rate_limited", "valid"]
        with pytest.raises(InvalidInput):
            verification.public_checks([{"request": right}] * 257)
    logged = query(db, "select outcome, client from check_log order by check_id")
    assert logged == [("valid", "10.0.0.1"), ("no_match", "10.0.0.2"), ("no_match", "10.0.0.3"),
                      ("valid", "10.0.0.5"), ("no_match", "10.0.0.6"), ("no_match", "10.0.0.7"),
                      ("rate_limited", "10.0.0.8"), ("valid", "10.0.0.9")]


def test_an_idempotency_key_makes_a_retry_answer_the_first_answer_and_change_nothing(start_service):
    from nameko.standalone.rpc import ServiceRpcProxy
    from sqlalchemy import text

    from credence_common.persistence import idempotency

    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    holder = signed_actor({"subject": "cand-1", "role": "candidate"})
    publish_event(config["AMQP_URI"], issued())
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    body = b'{"certificate_number": "%s"}' % NUMBER.encode()

    def proxy(key: str, request_body: bytes = body):
        headers = idempotency.request_headers(key, "candidate:cand-1", "request_report", "POST",
                                              "/api/v1/me/verification-reports", request_body, b"k" * 32)
        return ServiceRpcProxy("verification", {"AMQP_URI": config["AMQP_URI"]}, timeout=30, context_data=headers)

    with proxy("key-1") as first, proxy("key-1") as retry:
        made = first.request_report(holder, {"certificate_number": NUMBER})
        again = retry.request_report(holder, {"certificate_number": NUMBER})
    assert again == made  # the first answer, not a second report
    assert query(db, "select count(*) from verification_reports") == [(1,)]
    with proxy("key-1", b'{"certificate_number": "other"}') as reused, pytest.raises(InvalidInput) as refused:
        reused.request_report(holder, {"certificate_number": NUMBER})
    assert refused.value.code == "idempotency_key_reused"
    with proxy("key-2") as other_key:
        assert other_key.request_report(holder, {"certificate_number": NUMBER})["report_code"] != made["report_code"]
    assert query(db, "select count(*) from verification_reports") == [(2,)]

    # the first attempt committed its effect but its answer was never stored (a crash in between)
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE idempotency_records SET answer_json = NULL"))
    finally:
        engine.dispose()
    with proxy("key-1") as after_crash, pytest.raises(Conflict) as pending:
        after_crash.request_report(holder, {"certificate_number": NUMBER})
    assert pending.value.code == "idempotent_request_pending"
    assert query(db, "select count(*) from verification_reports") == [(2,)]
    with rpc_proxy("verification", config) as no_key:  # without a key nothing changes
        no_key.request_report(holder, {"certificate_number": NUMBER})
    assert query(db, "select count(*) from verification_reports") == [(3,)]


def test_a_report_code_is_shown_once_and_kept_only_as_its_digest(start_service):
    from credence_common.security import signing
    from services.verification.domain import reports

    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    holder = signed_actor({"subject": "cand-1", "role": "candidate"})
    employer = {"verifier_name": "张经理", "organisation": "HR", "purpose": "hiring"}
    publish_event(config["AMQP_URI"], issued())
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    with rpc_proxy("verification", config) as verification:
        made = verification.request_report(holder, {"certificate_number": NUMBER})
        code, report_id = made["report_code"], made["report_id"]
        assert code and report_id != code and made["verify_url"].endswith("/r/" + code)
        shared = verification.create_share_code(holder, code, {})["share_code"]
        full = verification.open_shared_report({"share_code": shared, **employer})
        public_key = signing.load_public_key(verification.report_public_key()["public_key_pem"])
        # the share code carried the report code sealed: the verifier gets the signed document, and it verifies
        assert reports.verify_report(full["report"]["signed_report"], public_key, utcnow(),
                                     made["verify_url"]).verdict == "valid"
        [listed] = verification.my_reports(holder)["reports"]
        assert (listed["report_id"], listed["report_code"], listed["verify_url"]) == (report_id, None, None)
        with pytest.raises(NotFound):  # the id names the report for its holder; it opens nothing for anyone
            verification.report_answer(report_id)
        with pytest.raises(Conflict) as no_code:  # the PDF's QR code needs the code itself
            verification.report_pdf(holder, report_id)
        assert no_code.value.code == "report_code_needed"
        by_id = verification.create_share_code(holder, report_id, {})["share_code"]
        opened = verification.open_shared_report({"share_code": by_id, **employer})
        assert opened["holder_name"] == "王小明" and opened["report"]["signed_report"] is None
        with pytest.raises(NotFound):  # another holder cannot name it either way
            verification.close_report(signed_actor({"subject": "cand-2", "role": "candidate"}), report_id)
        assert verification.close_report(holder, report_id)["state"] == "closed"  # no code needed to withdraw
    for table in ("verification_reports", "share_codes", "report_accesses"):
        stored = str(query(db, f"select * from {table}"))
        assert code not in stored and shared not in stored and by_id not in stored, table


def test_the_look_up_answers_alike_with_the_per_number_limit_on_or_off(databases):
    # with the limit on, the look-up and the failure count share one statement; with it off only the look-up runs
    import csv
    from datetime import datetime

    from bench import honest
    from credence_common.contracts.verification import PublicCheck
    from services.verification import usecases
    from services.verification.models import VerifiableCertificate

    engine = make_engine(databases.create("verification"))
    columns = ("certificate_number", "certificate_id", "holder_name", "holder_name_key", "resident_id_number_masked",
               "program_code", "program_name", "issued_on", "status", "updated_at", "sequence")
    rows = [dict(zip(columns, values, strict=True))
            for values in csv.reader(honest.seed_lines(2, "2026-12-06 12:00:00+00"))]
    for row in rows:
        row.update(issued_on=date.fromisoformat(row["issued_on"]), sequence=int(row["sequence"]),
                   updated_at=datetime.fromisoformat(row["updated_at"] + ":00"))
    wrong = PublicCheck(holder_name=honest.wrong_name(0), certificate_number=honest.certificate_number(0))
    right = PublicCheck(holder_name=honest.holder_name(1), certificate_number=honest.certificate_number(1))
    try:
        with engine.begin() as connection:
            connection.execute(VerifiableCertificate.__table__.insert(), rows)
        answers = {}
        for limit in (20, 0):
            with engine.begin() as connection:
                answers[limit] = [type(outcome).__name__ if isinstance(outcome, Exception) else outcome.result
                                  for outcome in usecases.public_checks(connection, [(wrong, "a"), (right, "b")],
                                                                        per_number_per_minute=limit)]
        assert answers[20] == answers[0] == ["NotFound", "valid"]
        with engine.begin() as connection:  # the two wrong guesses above count against that number at limit 1
            outcomes = usecases.public_checks(connection, [(wrong, "c"), (right, "d")], per_number_per_minute=1)
        assert [type(outcome).__name__ for outcome in outcomes] == ["RateLimited", "PublicCheckResult"]
    finally:
        engine.dispose()


def test_the_holder_sees_every_look_with_its_channel_masked_address_and_what_the_verifier_said(start_service):
    """issue #19 item 3: openings by code, by QR code and by share code, and public checks (alone and in a
    batch, with or without who is checking and why); bad input is refused and logs nothing."""
    import csv
    import io

    container, config = start_service(VerificationService)
    db = config["DB_URI"]
    holder = signed_actor({"subject": "cand-1", "role": "candidate"})
    publish_event(config["AMQP_URI"], issued())
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="read model")
    right = {"holder_name": "王小明", "certificate_number": NUMBER}
    stated = {"organisation": "某某科技 HR <b>", "purpose": "入职核查 =cmd"}
    with rpc_proxy("verification", config) as verification:
        made = verification.request_report(holder, {"certificate_number": NUMBER})
        code = made["report_code"]
        assert made["qr_url"] == made["verify_url"] + "?via=qr"
        assert verification.public_check({**right, **stated}, "203.0.113.77")["result"] == "valid"
        outcomes = verification.public_checks([  # the fields travel in a batch item's request
            {"request": {**right, "organisation": "Batch Org", "purpose": "batch purpose"}, "client": "203.0.113.78"},
            {"request": right, "client": "2001:db8:abcd:12::9"},
            {"request": {**right, "purpose": "p" * 201}, "client": "198.51.100.1"}])
        assert outcomes[0]["answer"]["result"] == outcomes[1]["answer"]["result"] == "valid"
        assert outcomes[2]["refusal"]["code"] == "invalid_input" and "p" * 201 not in str(outcomes[2])
        for too_long in ({"organisation": "o" * 101}, {"purpose": "p" * 201}):
            with pytest.raises(InvalidInput) as refused:
                verification.public_check({**right, **too_long}, "198.51.100.2")
            assert refused.value.code == "invalid_input"
        assert verification.report_answer(code, "192.0.2.10", "report_code")["state"] == "valid"
        assert verification.report_answer(code.lower(), "192.0.2.11", "report_qr")["state"] == "valid"
        assert verification.report_answer(code, "192.0.2.12", "made-up")["state"] == "valid"  # a typed code
        assert verification.report_answer(code)["state"] == "valid"  # a caller from before: no address
        with pytest.raises(NotFound):  # no report, no holder: nothing to record
            verification.report_answer("B" * 32, "192.0.2.13", "report_qr")
        shared = verification.create_share_code(holder, code, {})["share_code"]
        verification.open_shared_report({"share_code": shared, "verifier_name": "张经理", "organisation": "某某科技",
                                         "purpose": "背景调查"}, "192.0.2.14")
        looked = verification.my_accesses(holder)
        download = verification.my_accesses_csv(holder)
        others = verification.my_accesses(signed_actor({"subject": "cand-2", "role": "candidate"}))
        with pytest.raises(Forbidden):  # a holder's log is theirs: not for staff or anyone else
            verification.my_accesses_csv(signed_actor({"subject": "staff-1", "role": "staff"}))

    assert others == {"accesses": [], "truncated": False}
    assert looked["truncated"] is False
    seen = sorted((a["channel"], a["kind"], a["address_masked"], a["organisation"], a["purpose"], a["outcome"],
                   a["verifier_name"]) for a in looked["accesses"])
    assert seen == sorted([
        ("public_check", "public_check", "203.0.113.0/24", "某某科技 HR <b>", "入职核查 =cmd", "valid", None),
        ("public_check", "public_check", "203.0.113.0/24", "Batch Org", "batch purpose", "valid", None),
        ("public_check", "public_check", "2001:db8:abcd::/48", None, None, "valid", None),
        ("report_code", "report", "192.0.2.0/24", None, None, "valid", None),
        ("report_qr", "report", "192.0.2.0/24", None, None, "valid", None),
        ("report_code", "report", "192.0.2.0/24", None, None, "valid", None),
        ("report_code", "report", "", None, None, "valid", None),
        ("share_code", "full_report", "192.0.2.0/24", "某某科技", "背景调查", "valid", "张经理")])
    assert [a["at"] for a in looked["accesses"]] == sorted((a["at"] for a in looked["accesses"]), reverse=True)
    assert {a["certificate_number"] for a in looked["accesses"]} == {NUMBER}
    assert {a["report_code"] for a in looked["accesses"] if a["kind"] != "public_check"} == {made["report_id"]}
    # the holder sees networks only, never a full address; the report code itself is never shown back
    for full in ("203.0.113.77", "203.0.113.78", "192.0.2.10", "192.0.2.14", "2001:db8:abcd:12::9"):
        assert full not in str(looked) and full not in download
    assert code not in str(looked) and code not in download
    # the download is the same log, as CSV; a cell a verifier typed cannot start a formula
    assert download.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(download.lstrip("\ufeff"))))
    assert [(r["at"], r["channel"], r["address_masked"], r["organisation"], r["purpose"]) for r in rows] == [
        (a["at"].replace("Z", "+00:00"), a["channel"], a["address_masked"], a["organisation"] or "",
         ("'" + a["purpose"]) if (a["purpose"] or "").startswith("=") else a["purpose"] or "")
        for a in looked["accesses"]]
    # refused input logged nothing: what was logged is the checks answered and the openings of a real report
    assert query(db, "select count(*) from check_log") == [(3,)]
    assert query(db, "select client, organisation, purpose from check_log where client like '198.51.100.%'") == []
    assert query(db, "select count(*) from report_accesses") == [(5,)]
    assert query(db, "select channel, client from report_accesses where channel = 'report_qr'") == [
        ("report_qr", "192.0.2.11")]  # kept whole for 30 days, as the check log's (usecases.apply_retention)


def test_who_checks_and_why_ride_in_the_batchs_one_insert_the_statements_do_not_grow(databases):
    """The public check's hot path: one look-up and one insert per batch, whatever the verifiers said."""
    import csv as csv_module
    from datetime import datetime

    from sqlalchemy import event, select

    from bench import honest
    from credence_common.contracts.verification import PublicCheck
    from services.verification import usecases
    from services.verification.models import CheckLogEntry, VerifiableCertificate

    engine = make_engine(databases.create("verification"))
    columns = ("certificate_number", "certificate_id", "holder_name", "holder_name_key", "resident_id_number_masked",
               "program_code", "program_name", "issued_on", "status", "updated_at", "sequence")
    rows = [dict(zip(columns, values, strict=True))
            for values in csv_module.reader(honest.seed_lines(3, "2026-12-06 12:00:00+00"))]
    for row in rows:
        row.update(issued_on=date.fromisoformat(row["issued_on"]), sequence=int(row["sequence"]),
                   updated_at=datetime.fromisoformat(row["updated_at"] + ":00"))
    checks = [(PublicCheck(holder_name=honest.holder_name(i), certificate_number=honest.certificate_number(i),
                           organisation=f"Org {i}" if i % 2 else None, purpose="hiring" if i else None),
               f"10.0.0.{i}") for i in range(3)]
    statements: list[str] = []
    try:
        with engine.begin() as connection:
            connection.execute(VerifiableCertificate.__table__.insert(), rows)
        for _ in range(2):  # the second batch on a connection that has prepared its statements (PostgreSQL)
            statements.clear()
            listener = lambda *args: statements.append(args[2])  # noqa: E731
            event.listen(engine, "before_cursor_execute", listener)
            try:
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    outcomes = usecases.public_checks(connection, checks)
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert [outcome.result for outcome in outcomes] == ["valid"] * 3
        executed = [s for s in statements if not s.lstrip().upper().startswith(("PREPARE", "DEALLOCATE"))]
        assert len(executed) == 2, statements  # the look-up with the failures, and the log's one insert
        assert "organisation" in executed[1] or "verification_log_check" in executed[1]
        with engine.connect() as connection:
            logged = sorted(tuple(row) for row in connection.execute(select(
                CheckLogEntry.client, CheckLogEntry.organisation, CheckLogEntry.purpose)))
        assert logged == sorted([("10.0.0.0", None, None), ("10.0.0.1", "Org 1", "hiring"),
                                 ("10.0.0.2", None, "hiring")] * 2)
    finally:
        engine.dispose()
