"""Every (status, action) pair of a certificate, on a real database and broker: each legal step happens, each
illegal one is refused with 409 (or, for a payment, issues nothing and asks for a refund) and changes
nothing. The table it checks against is the domain's own, walked in tests/unit/test_certificates_domain.py."""

from __future__ import annotations

import itertools

import pytest

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict
from credence_common.contracts.events import CandidateConfirmedV1
from services.certificates.service import CertificatesService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_certificates import STAFF, paid, qualified

STATUSES = ("pending_confirmation", "correction_requested", "awaiting_candidate_payment",
            "awaiting_institution_payment", "issued", "revoked", "superseded")
ACTIONS = ("request_correction", "confirm", "pay", "revoke", "ship", "apply_for_replacement")
LEGAL = {("pending_confirmation", "request_correction"): "correction_requested",
         ("pending_confirmation", "confirm"): "awaiting_candidate_payment",
         ("awaiting_candidate_payment", "pay"): "issued", ("awaiting_institution_payment", "pay"): "issued",
         ("issued", "revoke"): "revoked", ("issued", "ship"): "issued", ("issued", "apply_for_replacement"): "issued"}
ADDRESS = {"photo_reference": "photos/p.jpg", "delivery_address": "北京市海淀区1号"}


class Builder:
    def __init__(self, config, certificates):
        self.config, self.certificates, self.counter = config, certificates, itertools.count()

    def status_of(self, certificate_id):
        return query(self.config["DB_URI"], "select status, version from certificates where certificate_id = :c",
                     c=certificate_id)[0]

    def wait_status(self, certificate_id, status):
        wait_for(lambda: self.status_of(certificate_id)[0] == status, what=status)

    def build(self, status: str) -> tuple[str, dict]:
        n = next(self.counter)
        candidate_id = f"cand-{n}"
        actor = signed_actor({"subject": candidate_id, "role": "candidate"})
        if status == "awaiting_institution_payment":
            publish_event(self.config["AMQP_URI"], CandidateConfirmedV1(
                candidate_id=candidate_id, ticket_number=f"1126{n:08d}", full_name="王小明",
                resident_id_number_masked="110105********002X", exam_region="11", method="on_site",
                confirmed_at=utcnow(), institution_id="inst-1"))
            wait_for(lambda: query(self.config["DB_URI"], "select count(*) from candidate_payers where "
                                   "candidate_id = :c", c=candidate_id) == [(1,)], what="payer known")
        publish_event(self.config["AMQP_URI"], qualified(result_id=f"res-{n}", candidate_id=candidate_id))
        certificate_id = wait_for(lambda: query(self.config["DB_URI"], "select certificate_id from certificates "
                                                "where result_id = :r", r=f"res-{n}"), what="application")[0][0]
        c = self.certificates
        if status == "correction_requested":
            c.request_correction(actor, certificate_id, {"field": "holder_name", "requested_value": "王晓明",
                                                         "reason": "typo"})
        if status in ("awaiting_candidate_payment", "awaiting_institution_payment", "issued", "revoked",
                      "superseded"):
            c.confirm_certificate(actor, certificate_id, ADDRESS)
        if status in ("issued", "revoked", "superseded"):
            publish_event(self.config["AMQP_URI"], paid(certificate_id, order=f"P2026112300000{n:05d}"))
            self.wait_status(certificate_id, "issued")
            batch = query(self.config["DB_URI"], "select batch_id from certificates where certificate_id = :c",
                          c=certificate_id)[0][0]
            if query(self.config["DB_URI"], "select status from production_batches where batch_id = :b",
                     b=batch) == [("open",)]:
                c.close_batch(STAFF, batch)  # so that shipping is possible for an issued certificate
        if status == "revoked":
            c.revoke_certificate(STAFF, certificate_id, {"reason": "fraud"})
        if status == "superseded":
            application = c.apply_for_replacement(actor, certificate_id, {"kind": "reissue", "reason": "lost"})
            publish_event(self.config["AMQP_URI"], paid(application["application_id"], amount_fen=10000,
                                                        order=f"P2026112399999{n:05d}").model_copy(
                update={"purpose": "certificate_reissue"}))
            wait_for(lambda: query(self.config["DB_URI"], "select status from replacement_applications where "
                                   "application_id = :a", a=application["application_id"]) == [("pending",)],
                     what="reissue paid")
            c.start_replacement(STAFF, application["application_id"])
            c.complete_replacement(STAFF, application["application_id"])
        assert self.status_of(certificate_id)[0] == status
        return certificate_id, actor

    def act(self, action: str, certificate_id: str, actor: dict, n: int):
        c = self.certificates
        if action == "request_correction":
            return c.request_correction(actor, certificate_id, {"field": "photo_reference",
                                                                "requested_value": "photos/new.jpg", "reason": "r"})
        if action == "confirm":
            return c.confirm_certificate(actor, certificate_id, ADDRESS)
        if action == "revoke":
            return c.revoke_certificate(STAFF, certificate_id, {"reason": "r"})
        if action == "ship":
            return c.ship_certificate(STAFF, certificate_id, {"courier": "EMS", "tracking_number": f"EA{n:09d}CN"})
        if action == "apply_for_replacement":
            return c.apply_for_replacement(actor, certificate_id, {"kind": "reissue", "reason": "lost"})
        raise AssertionError(action)


def test_every_status_and_action_on_a_real_database(start_service, payments_fees):
    container, config = start_service(CertificatesService)
    with rpc_proxy("certificates", config) as certificates:
        builder = Builder(config, certificates)
        for n, (status, action) in enumerate(itertools.product(STATUSES, ACTIONS)):
            certificate_id, actor = builder.build(status)
            before = builder.status_of(certificate_id)
            legal = (status, action) in LEGAL
            if action == "pay":
                processed = query(config["DB_URI"], "select count(*) from processed_events")[0][0]
                publish_event(config["AMQP_URI"], paid(certificate_id, order=f"P2026112377777{n:05d}"))
                wait_for(lambda seen=processed: query(config["DB_URI"], "select count(*) from processed_events")[0][0]
                         > seen, what=f"payment handled ({status})")
            elif legal:
                builder.act(action, certificate_id, actor, n)
            else:
                with pytest.raises(Conflict) as refused:
                    builder.act(action, certificate_id, actor, n)
                assert refused.value.code in ("illegal_transition", "replacement_in_progress"), (status, action)
            after = builder.status_of(certificate_id)
            if legal:
                assert after[0] == LEGAL[(status, action)] and after[1] > before[1], (status, action)
            else:
                assert after == before, f"{action} on a {status} certificate changed it"
    refunds = query(config["DB_URI"], "select count(*) from outbox where event_type = "
                                      "'credence.certificate.refund_requested.v1'")[0][0]
    assert refunds == len([s for s in STATUSES if (s, "pay") not in LEGAL])  # every unusable payment goes back
