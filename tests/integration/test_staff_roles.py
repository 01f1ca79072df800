"""Staff roles in the services themselves, on a real broker and database (SQLite and PostgreSQL): identity keeps each
account's roles, names them at sign-in and refresh and records every change; scoring refuses a staff actor without
the role an action needs, whatever the gateway did (credence_common/contracts/staff_roles.py,
credence_common/security/actors.py)."""

from __future__ import annotations

import pytest

from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence_common.contracts.staff_roles import STAFF_ROLES
from services.certificates.service import CertificatesService
from services.identity.service import IdentityService
from services.payments.service import PaymentsService
from services.scoring.service import ScoringService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_scoring import EXPERT, confirmed, line

ADMIN = signed_actor({"subject": "staff:admin", "role": "staff", "staff_roles": ["admin"]})
PASSWORD = "Juniper-kite 58 quarry"


def staff(subject: str, *roles: str) -> str:
    return signed_actor({"subject": subject, "role": "staff", "staff_roles": list(roles)})


def test_identity_keeps_roles_names_them_at_sign_in_and_refresh_and_records_each_change(start_service):
    container, config = start_service(IdentityService)
    db = config["DB_URI"]
    with rpc_proxy("identity", config) as identity:
        # the bootstrap account holds every role
        bootstrap = identity.authenticate_staff({"username": "admin", "password": "test-staff-password"})
        assert bootstrap["staff_roles"] == list(STAFF_ROLES)

        # only an admin creates accounts and manages roles; a role-less account does nothing
        for refused_actor in (staff("staff:clerk", "recorder", "support"), staff("staff:new")):
            with pytest.raises(Forbidden) as refused:
                identity.create_staff_account(refused_actor, {"username": "li.expert", "display_name": "Li",
                                                              "password": PASSWORD, "roles": ["expert"]})
            assert refused.value.code == "role_required"
            with pytest.raises(Forbidden):
                identity.set_staff_roles(refused_actor, "admin", {"roles": [], "reason": "take over"})
        assert query(db, "select count(*) from staff_accounts") == [(1,)]

        created = identity.create_staff_account(ADMIN, {"username": "li.expert", "display_name": "Li",
                                                        "password": PASSWORD, "roles": ["expert", "recorder"]})
        assert created == {"username": "li.expert", "display_name": "Li", "roles": ["recorder", "expert"]}
        plain = identity.create_staff_account(ADMIN, {"username": "wu.new", "display_name": "Wu",
                                                      "password": PASSWORD})
        assert plain["roles"] == []  # none unless given
        with pytest.raises(InvalidInput):  # an unknown role is refused, nothing created
            identity.create_staff_account(ADMIN, {"username": "zhao", "display_name": "Zhao", "password": PASSWORD,
                                                  "roles": ["boss"]})
        assert query(db, "select count(*) from staff_accounts where username = 'zhao'") == [(0,)]

        signed_in = identity.authenticate_staff({"username": "li.expert", "password": PASSWORD})
        assert (signed_in["subject"], signed_in["staff_roles"]) == ("staff:li.expert", ["recorder", "expert"])

        changed = identity.set_staff_roles(ADMIN, "li.expert", {"roles": ["expert"], "reason": "no longer records"})
        assert changed["roles"] == ["expert"]
        # the change counts from the next refresh (or sign-in)
        refreshed = identity.refresh_session({"refresh_token": signed_in["refresh_token"]})
        assert refreshed["staff_roles"] == ["expert"]
        assert identity.authenticate_staff({"username": "wu.new", "password": PASSWORD})["staff_roles"] == []

        # nobody changes their own roles; the last admin keeps admin; an unknown account is 404
        with pytest.raises(Forbidden) as own:
            identity.set_staff_roles(staff("staff:li.expert", "admin"), "li.expert",
                                     {"roles": list(STAFF_ROLES), "reason": "promote myself"})
        assert own.value.code == "own_roles"
        with pytest.raises(Conflict) as last:
            identity.set_staff_roles(staff("staff:li.expert", "admin"), "admin",
                                     {"roles": ["recorder"], "reason": "narrow the bootstrap account"})
        assert last.value.code == "last_admin"
        with pytest.raises(NotFound):
            identity.set_staff_roles(ADMIN, "nobody", {"roles": ["expert"], "reason": "typo"})
        assert query(db, "select roles from staff_accounts where username = 'admin'") == [(",".join(STAFF_ROLES),)]

        # once another account holds admin, the bootstrap account can be narrowed
        identity.set_staff_roles(ADMIN, "wu.new", {"roles": ["admin"], "reason": "second administrator"})
        identity.set_staff_roles(staff("staff:wu.new", "admin"), "admin",
                                 {"roles": ["admin"], "reason": "bootstrap account only administers"})
        assert identity.authenticate_staff({"username": "admin", "password": "test-staff-password"})[
            "staff_roles"] == ["admin"]

        listed = identity.staff_accounts(ADMIN)["accounts"]
        assert [(a["username"], a["roles"]) for a in listed] == [
            ("admin", ["admin"]), ("li.expert", ["expert"]), ("wu.new", ["admin"])]
        history = identity.staff_role_changes(ADMIN, "li.expert")["changes"]
        assert [(h["changed_by"], h["roles_before"], h["roles_after"], h["reason"]) for h in history] == [
            ("staff:admin", [], ["recorder", "expert"], "account created"),
            ("staff:admin", ["recorder", "expert"], ["expert"], "no longer records")]
        assert [h["changed_by"] for h in identity.staff_role_changes(ADMIN, "admin")["changes"]] == [
            "bootstrap", "staff:wu.new"]
        # setting the same roles again changes (and records) nothing
        identity.set_staff_roles(ADMIN, "li.expert", {"roles": ["expert"], "reason": "again"})
        assert len(identity.staff_role_changes(ADMIN, "li.expert")["changes"]) == 2


def test_scoring_refuses_a_staff_actor_without_the_role_and_changes_nothing(start_service):
    container, config = start_service(ScoringService)
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], confirmed("112600000001", "cand-1"))
    wait_for(lambda: query(db, "select count(*) from roster") == [(1,)], what="roster")
    recorder, nobody = staff("staff:rec", "recorder"), staff("staff:new")
    release = {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"}
    with rpc_proxy("scoring", config) as scoring:
        for actor in (staff("staff:exp", "expert"), nobody):
            with pytest.raises(Forbidden) as refused:
                scoring.record_results(actor, {"results": [line("112600000001", 82)]})
            assert refused.value.code == "role_required"
            assert refused.value.details == [{"field": "staff_role", "message": "recorder"}]
        assert query(db, "select count(*) from exam_results") == [(0,)]

        scoring.record_results(recorder, {"results": [line("112600000001", 82)]})
        item = scoring.evaluation_queue(EXPERT, "PSY-COUNSELLOR", "2026-11")["items"][0]
        for actor in (staff("staff:other", "recorder", "publisher"), nobody):
            with pytest.raises(Forbidden) as refused:
                scoring.evaluate_result(actor, item["result_id"], {"decision": "passed"})
            assert refused.value.code == "role_required"
        for actor in (recorder, staff("staff:exp", "expert")):
            with pytest.raises(Forbidden) as refused:
                scoring.publish_results(actor, release)
            assert refused.value.code == "role_required"
        assert query(db, "select count(*) from result_evaluations") == [(0,)]
        assert query(db, "select count(*) from releases") == [(0,)]
        # a candidate's record: the candidate, or support
        with pytest.raises(Forbidden):
            scoring.candidate_record(recorder, "cand-1")
        assert scoring.candidate_record(staff("staff:desk", "support"), "cand-1")["candidate_id"] == "cand-1"


def test_certificates_and_payments_refuse_a_staff_actor_without_the_role(start_service):
    container, config = start_service(CertificatesService)
    desk = staff("staff:desk", "support")
    with rpc_proxy("certificates", config) as certificates:
        for refused_call in (lambda: certificates.revoke_certificate(desk, "cert-1", {"reason": "fraud"}),
                             lambda: certificates.production_batches(desk),
                             lambda: certificates.certificate_by_number(staff("staff:money", "finance"), "1")):
            with pytest.raises(Forbidden) as refused:
                refused_call()
            assert refused.value.code == "role_required"
        with pytest.raises(NotFound):  # support finds certificates: past the role check, this one is unknown
            certificates.certificate_by_number(desk, "202611000000018")
        assert certificates.production_batches(staff("staff:office", "registrar"))["batches"] == []

    container, config = start_service(PaymentsService)
    fee = {"description": "Written exam", "amount_fen": 3000}
    with rpc_proxy("payments", config) as payments:
        for actor in (desk, staff("staff:admin", "admin", "publisher")):
            with pytest.raises(Forbidden) as refused:
                payments.set_fee(actor, "exam_fee_written", fee)
            assert refused.value.code == "role_required"
            with pytest.raises(Forbidden):
                payments.refunds(actor)
        assert "exam_fee_written" not in {f["fee_code"] for f in payments.fee_schedule()["fees"]}
        assert payments.set_fee(staff("staff:money", "finance"), "exam_fee_written", fee)["amount_fen"] == 3000
