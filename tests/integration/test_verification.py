"""Verification in a real container: its read model comes from certificate.issued events only."""

from __future__ import annotations

from datetime import date

import pytest

from credence_common.certificate_numbers import format_certificate_number
from credence_common.contracts.events import CertificateIssuedV1, CertificateRevokedV1
from credence_common.errors import InvalidInput, NotFound
from credence_common.events import make_envelope, utcnow
from services.verification.service import VerificationService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for

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
            "resident_id_number_masked": "110105********002X", "program_code": "PSY-COUNSELLOR",
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
            with pytest.raises(NotFound):
                verification.public_check({"holder_name": "王小明", "certificate_number": number})
    assert query(db, "select status from verifiable_certificates where certificate_number = :n", n=NUMBER) == [
        ("revoked",)]
