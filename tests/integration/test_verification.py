"""Verification in a real container: its read model comes from certificate.issued events only."""

from __future__ import annotations

from datetime import date

import pytest

from credence_common.certificate_numbers import format_certificate_number
from credence_common.contracts.events import CertificateIssuedV1
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
