"""Certificates keeps no price: the amounts are payments' fee schedule, asked per certificate or application
created (the schedule's round trip and a new fee's effect are in tests/integration/test_certificates.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from nameko.exceptions import UnknownService
from nameko.testing.services import worker_factory

from credence_common.contracts.errors import ServiceUnavailable
from credence_common.contracts.payments import FeeSchedule
from services.certificates import domain, usecases
from services.certificates.service import CertificatesService
from tests.fee_seed import seeded_fees

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def schedule(**fees: int) -> FeeSchedule:
    return FeeSchedule(fees=[{"fee_code": code, "description": code, "amount_fen": fen, "updated_at": NOW}
                             for code, fen in fees.items()])


def test_the_price_is_the_one_in_payments_schedule():
    fees = schedule(**dict(seeded_fees(), certificate_fee=7300))
    assert usecases.price_of(fees, domain.CERTIFICATE_FEE_CODE) == 7300
    assert usecases.price_of(fees, domain.REPLACEMENT_KINDS["reissue"]) == seeded_fees()["certificate_reissue"]


def test_a_fee_missing_from_the_schedule_is_refused_as_payments_not_ready():
    with pytest.raises(ServiceUnavailable) as missing:
        usecases.price_of(schedule(certificate_reissue=100), domain.CERTIFICATE_FEE_CODE)
    assert missing.value.code == "fee_not_in_schedule"


def test_a_qualification_fails_with_nothing_written_when_payments_does_not_answer():
    """The handler raises before its transaction opens, so the reliable handler retries the event later."""
    service = worker_factory(CertificatesService, settings={"RPC_TIMEOUT_SECONDS": 1})
    service.payments_rpc.fee_schedule.side_effect = UnknownService("payments")
    with mock.patch("services.certificates.service.consume") as consume:
        with pytest.raises(ServiceUnavailable) as away:
            service.handle_candidate_qualified({"any": "message"})
    assert away.value.code == "service_unavailable"
    consume.assert_not_called()
    service.db.transaction.assert_not_called()
