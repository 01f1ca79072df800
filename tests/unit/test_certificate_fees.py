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
    """Payments is asked after a read (is there a certificate to create?) and before the transaction that writes,
    so the reliable handler retries the event later with nothing written."""
    service = worker_factory(CertificatesService, settings={"RPC_TIMEOUT_SECONDS": 1})
    service.payments_rpc.fee_schedule.side_effect = UnknownService("payments")
    with mock.patch("services.certificates.service.consume") as consume, \
            mock.patch("services.certificates.service.read_event"), \
            mock.patch.object(usecases, "needs_fee_schedule", return_value=True):
        with pytest.raises(ServiceUnavailable) as away:
            service.handle_candidate_qualified({"any": "message"})
    assert away.value.code == "service_unavailable"
    consume.assert_not_called()
    assert service.db.transaction.call_count == 1  # the read; nothing that writes


def test_a_duplicate_or_applied_qualification_does_not_ask_payments():
    """A qualification with nothing to create (a duplicate, one whose certificate exists) is applied without a
    price: it neither costs payments a call nor waits for payments while it is down."""
    service = worker_factory(CertificatesService, settings={"RPC_TIMEOUT_SECONDS": 1})
    service.payments_rpc.fee_schedule.side_effect = UnknownService("payments")
    with mock.patch("services.certificates.service.consume") as consume, \
            mock.patch("services.certificates.service.read_event"), \
            mock.patch.object(usecases, "needs_fee_schedule", return_value=False):
        service.handle_candidate_qualified({"any": "message"})
    service.payments_rpc.fee_schedule.assert_not_called()
    assert consume.call_args.args[4].keywords == {"fees": None}


def test_creating_a_certificate_without_a_price_is_retried_not_guessed():
    """The read said nothing was to be created and something changed before the write: the event is retried (and
    then asks payments) rather than creating a certificate without payments' price."""
    session = mock.Mock()
    with mock.patch.object(usecases, "_qualification_to_apply", return_value=(True, None)):
        with pytest.raises(ServiceUnavailable) as retried:
            usecases.create_for_qualified_candidate(session, mock.Mock(), fees=None)
    assert retried.value.code == "fee_schedule_needed"
    session.add.assert_not_called()


def test_the_certificate_fee_setting_of_the_previous_release_is_reported_as_ignored(caplog):
    from services.certificates.dependencies import Rules

    rules = Rules()
    rules.container = mock.Mock(config={"CERTIFICATE_FEE_FEN": "6000"})
    with caplog.at_level("WARNING", logger="services.certificates.dependencies"):
        rules.setup()
    assert "CERTIFICATE_FEE_FEN is no longer read" in caplog.text
