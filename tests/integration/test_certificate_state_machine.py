"""A property-based state machine (hypothesis) drives certificates through the real service, database and broker
in random order (a fresh seed each run, printed, and named on failure: tests/integration/stateful.py): qualifying
results, corrections, confirmations, payments (also for certificates that can no longer use them), revocations,
production batches, shipping, and replacement applications (paid, started, completed, or voided by a
revocation), each on any certificate of the run. A model says what each step must do: a legal step happens, an
illegal one is refused with 409 (a payment: issues nothing and asks for a refund) and changes nothing. After every
step the database must agree with the model: every certificate's status and delivery, every application's
status, versions that only grow, no certificate number twice, and exactly one refund request per payment that
could not be used. The transition table itself is the domain's, walked in tests/unit/test_certificates_domain.py."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, precondition, rule
from sqlalchemy import text

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict
from credence_common.contracts.events import CandidateConfirmedV1
from credence_common.persistence.db import make_engine
from services.certificates.service import CertificatesService
from tests.integration.conftest import publish_event, rpc_proxy, signed_actor, wait_for
from tests.integration.stateful import run_with_seed
from tests.integration.test_certificates import STAFF, paid, qualified

MAX_EXAMPLES, STEPS = 40, 50  # about a minute per database on the 2-core machine
ADDRESS = {"photo_reference": "photos/p.jpg", "delivery_address": "北京市海淀区1号"}
AWAITING = ("awaiting_candidate_payment", "awaiting_institution_payment")
ACTIVE = ("awaiting_payment", "pending", "processing")  # a replacement application still open
ORDERS = itertools.count(1)  # order numbers unique over the whole run (refund requests are keyed by them)


@dataclass
class Expected:
    """What the model says about one certificate."""
    candidate_id: str
    actor: dict
    payer: str  # candidate | institution
    status: str = "pending_confirmation"
    delivery: str = "none"
    batch: str | None = None
    version: int = 0  # the last version seen: it only grows
    correction: str | None = None  # the latest correction request, and whether it is still open
    correction_open: bool = False
    application: str | None = None  # the latest replacement application
    application_status: str | None = None


class CertificatesMachine(RuleBasedStateMachine):
    config: dict = {}
    engine = None  # for the model's look-ups, one for the whole run
    proxies: dict = {}  # the RPC proxy, set by the test for the whole run (in a dict: hypothesis looks for rules
    # on the class's attributes, and a proxy answers any attribute)
    refunds_expected = 0  # over the whole run: every example writes to the same database
    reached: Counter = Counter()  # the statuses the run's certificates ended in, printed at the end

    certs = Bundle("certificates")

    def __init__(self):
        super().__init__()
        self.run = uuid.uuid4().hex[:8]
        self.counter = itertools.count()
        self.model: dict[str, Expected] = {}
        self.batches: dict[str, str] = {}  # batch id -> open | closed, for the batches this run's certificates joined

    # --- helpers -------------------------------------------------------------------------------------------

    @property
    def certificates(self):
        return self.proxies["certificates"]

    def _db(self, sql: str, **params) -> list:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]

    def _row(self, certificate_id: str) -> tuple:
        return self._db("select status, delivery_status, batch_id, version from certificates "
                        "where certificate_id = :c", c=certificate_id)[0]

    def _refused(self, call, *codes: str) -> None:
        with pytest.raises(Conflict) as refused:
            call()
        assert refused.value.code in codes, refused.value.code

    def _publish_and_wait(self, event) -> None:
        envelope = publish_event(self.config["AMQP_URI"], event)
        wait_for(lambda: self._db("select count(*) from processed_events where event_id = :e",
                                  e=envelope["id"]) == [(1,)], what=f"{event.event_type} handled")

    def _issued(self, certificate_id: str) -> None:
        """An issued certificate is queued in the open production batch."""
        expected = self.model[certificate_id]
        expected.status, expected.delivery = "issued", "queued"
        expected.batch = self._row(certificate_id)[2]
        self.batches.setdefault(expected.batch, "open")

    def _aim(self, data, certificate_id: str, legal) -> str:
        """Mostly a certificate the step is legal for, if the run has one (or runs would seldom get far), else the
        one drawn from the bundle, whatever its status."""
        # in the order the run made them (not by id: ids are random, and hypothesis must see the same choices
        # lead to the same steps when it replays a case)
        candidates = [c for c, expected in self.model.items() if legal(expected)]
        if candidates and data.draw(st.integers(0, 3), label="aim") > 0:
            return data.draw(st.sampled_from(candidates), label="certificate")
        return certificate_id

    def _order(self) -> str:
        return f"P20261207{next(ORDERS):010d}"

    # --- rules ---------------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.model) < 4)  # a few certificates, taken far: not many taken one step
    @rule(target=certs, institution=st.booleans())
    def qualify(self, institution):
        """A qualifying result arrives (for a candidate of a training institution, the institution pays)."""
        n = next(self.counter)
        candidate_id = f"{self.run}-{n}"
        if institution:
            self._publish_and_wait(CandidateConfirmedV1(
                candidate_id=candidate_id, ticket_number=f"1126{n:08d}", full_name="王小明",
                resident_id_number_masked="110105********002X", exam_region="11", method="on_site",
                confirmed_at=utcnow(), institution_id="inst-1"))
        result_id = f"res-{candidate_id}"
        self._publish_and_wait(qualified(result_id=result_id, candidate_id=candidate_id))
        [(certificate_id,)] = self._db("select certificate_id from certificates where result_id = :r", r=result_id)
        self.model[certificate_id] = Expected(candidate_id, signed_actor({"subject": candidate_id,
                                                                          "role": "candidate"}),
                                              "institution" if institution else "candidate")
        return certificate_id

    @rule(certificate_id=certs, data=st.data())
    def request_correction(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id, lambda e: e.status == "pending_confirmation")
        expected = self.model[certificate_id]
        call = lambda: self.certificates.request_correction(  # noqa: E731
            expected.actor, certificate_id, {"field": "photo_reference", "requested_value": "photos/new.jpg",
                                             "reason": "r"})
        if expected.status == "pending_confirmation":
            expected.correction, expected.correction_open = call()["request_id"], True
            expected.status = "correction_requested"
        else:
            self._refused(call, "illegal_transition")

    @rule(certificate_id=certs, data=st.data(), accept=st.booleans())
    def decide_correction(self, certificate_id, data, accept):
        """Staff accept or reject the request: either way the candidate confirms (or asks again) next."""
        certificate_id = self._aim(data, certificate_id, lambda e: e.correction_open)
        expected = self.model[certificate_id]
        if expected.correction is None:
            return
        call = lambda: self.certificates.decide_correction(  # noqa: E731
            STAFF, expected.correction, {"decision": "accept" if accept else "reject", "note": "n"})
        if expected.correction_open:
            call()
            expected.status, expected.correction_open = "pending_confirmation", False
        else:
            self._refused(call, "correction_already_decided")

    @rule(certificate_id=certs, data=st.data())
    def confirm(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id, lambda e: e.status == "pending_confirmation")
        expected = self.model[certificate_id]
        call = lambda: self.certificates.confirm_certificate(expected.actor, certificate_id, ADDRESS)  # noqa: E731
        if expected.status == "pending_confirmation":
            call()
            expected.status = f"awaiting_{expected.payer}_payment"
        else:
            self._refused(call, "illegal_transition")

    @rule(certificate_id=certs, data=st.data())
    def pay(self, certificate_id, data):
        """payments.payment_succeeded for the certificate's fee: it issues an awaiting certificate; any other
        certificate cannot use it, stays as it is, and the money is asked back."""
        certificate_id = self._aim(data, certificate_id, lambda e: e.status in AWAITING)
        expected = self.model[certificate_id]
        self._publish_and_wait(paid(certificate_id, order=self._order()))
        if expected.status in AWAITING:
            self._issued(certificate_id)
        else:
            CertificatesMachine.refunds_expected += 1

    @rule(certificate_id=certs, data=st.data())
    def revoke(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id, lambda e: e.status == "issued")
        expected = self.model[certificate_id]
        call = lambda: self.certificates.revoke_certificate(STAFF, certificate_id, {"reason": "r"})  # noqa: E731
        if expected.status != "issued":
            self._refused(call, "illegal_transition")
            return
        call()
        expected.status = "revoked"
        if expected.application_status in ("awaiting_payment", "pending", "processing"):
            # nothing left to replace: the application is voided, a paid one's fee goes back
            if expected.application_status != "awaiting_payment":
                CertificatesMachine.refunds_expected += 1
            expected.application_status = "cancelled"

    @rule(certificate_id=certs, data=st.data())
    def close_batch(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id,
                                   lambda e: e.batch is not None and self.batches[e.batch] == "open")
        expected = self.model[certificate_id]
        if expected.batch is None:
            return
        call = lambda: self.certificates.close_batch(STAFF, expected.batch)  # noqa: E731
        if self.batches[expected.batch] == "closed":
            self._refused(call, "batch_closed")
            return
        call()
        self.batches[expected.batch] = "closed"
        for other in self.model.values():  # what was queued in it goes to the printer
            if other.batch == expected.batch and other.status == "issued" and other.delivery == "queued":
                other.delivery = "printing"

    @rule(certificate_id=certs, data=st.data())
    def ship(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id, lambda e: e.status == "issued" and e.delivery == "printing")
        expected = self.model[certificate_id]
        call = lambda: self.certificates.ship_certificate(  # noqa: E731
            STAFF, certificate_id, {"courier": "EMS", "tracking_number": f"EA{next(ORDERS):09d}CN"})
        if expected.status == "issued" and expected.delivery == "printing":
            call()
            expected.delivery = "shipped"
        else:
            self._refused(call, "illegal_transition")

    @rule(certificate_id=certs, data=st.data())
    def apply_for_replacement(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id,
                                   lambda e: e.status == "issued" and e.application_status not in ACTIVE)
        expected = self.model[certificate_id]
        call = lambda: self.certificates.apply_for_replacement(  # noqa: E731
            expected.actor, certificate_id, {"kind": "reissue", "reason": "lost"})
        if expected.status != "issued":
            self._refused(call, "illegal_transition")
        elif expected.application_status in ACTIVE:
            self._refused(call, "replacement_in_progress")
        else:
            expected.application = call()["application_id"]
            expected.application_status = "awaiting_payment"

    @rule(certificate_id=certs, data=st.data())
    def pay_replacement(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id, lambda e: e.application_status == "awaiting_payment")
        expected = self.model[certificate_id]
        if expected.application is None:
            return
        self._publish_and_wait(paid(expected.application, amount_fen=10000, order=self._order()).model_copy(
            update={"purpose": "certificate_reissue"}))
        if expected.application_status == "awaiting_payment":
            expected.application_status = "pending"
        else:
            CertificatesMachine.refunds_expected += 1

    @rule(certificate_id=certs, data=st.data())
    def start_replacement(self, certificate_id, data):
        certificate_id = self._aim(data, certificate_id, lambda e: e.application_status == "pending")
        expected = self.model[certificate_id]
        if expected.application is None:
            return
        call = lambda: self.certificates.start_replacement(STAFF, expected.application)  # noqa: E731
        if expected.application_status == "pending":
            call()
            expected.application_status = "processing"
        else:
            self._refused(call, "illegal_transition")

    @rule(target=certs, certificate_id=certs, data=st.data())
    def complete_replacement(self, certificate_id, data):
        """The new certificate is issued (and joins the open batch); the old one is superseded."""
        certificate_id = self._aim(data, certificate_id, lambda e: e.application_status == "processing")
        expected = self.model[certificate_id]
        if expected.application is None:
            return multiple()
        call = lambda: self.certificates.complete_replacement(STAFF, expected.application)  # noqa: E731
        if expected.application_status != "processing" or expected.status != "issued":
            self._refused(call, "illegal_transition")
            return multiple()
        new_id = call()["new_certificate_id"]
        expected.status, expected.application_status = "superseded", "completed"
        self.model[new_id] = Expected(expected.candidate_id, expected.actor, "candidate")
        self._issued(new_id)
        return new_id

    def teardown(self):
        self.reached.update(expected.status for expected in self.model.values())
        self.reached.update(f"application {expected.application_status}" for expected in self.model.values()
                            if expected.application_status)

    # --- what must hold after every step -------------------------------------------------------------------

    @invariant()
    def the_database_agrees_with_the_model(self):
        rows = {row[0]: row[1:] for row in self._db("select certificate_id, status, delivery_status, batch_id, "
                                                    "version from certificates")}
        applications = dict(self._db("select application_id, status from replacement_applications"))
        for certificate_id, expected in self.model.items():
            status, delivery, batch, version = rows[certificate_id]
            assert (status, delivery) == (expected.status, expected.delivery), (certificate_id, expected)
            assert batch == expected.batch, certificate_id
            assert version >= expected.version, certificate_id
            expected.version = version
            if expected.application is not None:
                assert applications[expected.application] == expected.application_status, expected
        assert self._db("select certificate_number, count(*) from certificates where certificate_number is not null "
                        "group by certificate_number having count(*) > 1") == []
        refunds = self._db("select count(*) from outbox where event_type = "
                           "'credence.certificate.refund_requested.v1'")[0][0]
        assert refunds == CertificatesMachine.refunds_expected


def test_random_steps_on_random_certificates_do_what_the_model_says(start_service, payments_fees):
    container, config = start_service(CertificatesService)
    CertificatesMachine.config = config
    CertificatesMachine.engine = make_engine(config["DB_URI"])
    CertificatesMachine.refunds_expected = 0
    CertificatesMachine.reached.clear()
    with rpc_proxy("certificates", config) as certificates:
        CertificatesMachine.proxies["certificates"] = certificates
        try:
            # every step goes through the broker and the service: no shrinking (a failure prints its steps and
            # its seed, which repeats it)
            run_with_seed(CertificatesMachine, settings(
                max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
            print("certificates ended:", dict(CertificatesMachine.reached), "refund requests:",
                  CertificatesMachine.refunds_expected)
        finally:
            CertificatesMachine.proxies.clear()
            CertificatesMachine.engine.dispose()
