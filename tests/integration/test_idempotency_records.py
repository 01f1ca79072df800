"""Idempotency-Key records on a real database (SQLite and PostgreSQL): they expire, every service's timer prunes
them, and no token, code or password is left in clear in identity's tables after the sign-in flows."""

from __future__ import annotations

import base64
import importlib
import re
from datetime import timedelta

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Unauthorized
from credence_common.persistence import idempotency
from credence_common.persistence.db import make_engine
from services.certificates.service import CertificatesService
from services.identity.service import IdentityService
from services.payments.service import PaymentsService
from services.scoring.service import ScoringService
from services.verification.service import VerificationService
from tests.integration.conftest import query, rpc_proxy
from tests.integration.test_identity import MOBILE, PASSWORD, registration, texted_code

GATEWAY_KEY = idempotency.gateway_key("test-jwt-secret")


def gateway_headers(key: str, route: str, body: bytes = b"{}", caller: str = "public:anonymous") -> dict:
    return idempotency.request_headers(key, caller, route, "POST", f"/api/v1/{route}", body, GATEWAY_KEY)


def call_for(headers: dict, target: str = "identity.register_candidate", hours: float = 24):
    return idempotency.IdempotentCall(headers[idempotency.RECORD_HEADER], headers[idempotency.FINGERPRINT_HEADER],
                                      target, base64.b64decode(headers[idempotency.ANSWER_KEY_HEADER]),
                                      timedelta(hours=hours))


def test_an_expired_record_is_never_replayed_and_the_request_runs_as_a_new_one(databases):
    engine = make_engine(databases.create("identity"))
    headers = gateway_headers("key-1", "register_candidate")
    try:
        with Session(engine) as session, session.begin():
            first = call_for(headers)
            first.claim(session)
            first.store(session, {"candidate_id": "cand-first"})
        with Session(engine) as session, session.begin(), pytest.raises(idempotency.StoredAnswer) as replayed:
            call_for(headers).claim(session)
        assert replayed.value.answer == {"result": {"candidate_id": "cand-first"}}
        stored = query(str(engine.url.render_as_string(hide_password=False)), "select answer_json from "
                       "idempotency_records")
        assert stored[0][0].startswith("v1:") and "cand-first" not in stored[0][0]

        with engine.begin() as connection:  # the record is now one second older than its 24 hours
            connection.execute(text("UPDATE idempotency_records SET created_at = :then"),
                               {"then": utcnow() - timedelta(hours=24, seconds=1)})
        with Session(engine) as session, session.begin():
            retry = call_for(headers)
            retry.claim(session)  # not a StoredAnswer: the request runs again
        assert retry.claimed
        with engine.connect() as connection:
            rows = connection.execute(text("select answer_json, created_at from idempotency_records")).all()
        assert len(rows) == 1 and rows[0][0] is None  # the old answer went with the old record

        # a service with a shorter TTL forgets sooner
        with Session(engine) as session, session.begin():
            short = call_for(headers, hours=0.5)
            short.claim(session, now=utcnow() + timedelta(minutes=31))
        assert short.claimed
    finally:
        engine.dispose()


def test_the_key_is_taken_in_the_effects_transaction_and_the_answer_is_stored_after_its_commit(databases):
    """docs/reliability.md, "A retry never doubles an effect": the record of an Idempotency-Key is inserted in the
    effect's own transaction (a rolled-back effect leaves no record, so a retry runs it), a committed effect leaves
    a record without an answer (a retry then is told 409 pending, never run twice), and the answer is stored in a
    transaction after that commit (what ``IdempotentRpc`` does, credence_common/bus/entrypoints.py)."""
    from credence_common.contracts.errors import Conflict
    from credence_common.persistence.db import CommitSignal, UnitOfWork
    from credence_common.persistence.sequences import next_value
    from services.identity.models import NumberSequence

    engine = make_engine(databases.create("identity"))
    headers = gateway_headers("key-tx", "register_candidate")
    try:
        failed = UnitOfWork(engine, CommitSignal(), call_for(headers))
        with pytest.raises(RuntimeError), failed.transaction() as session:
            next_value(session, NumberSequence, "effect")  # the effect
            raise RuntimeError("the effect fails before its commit")
        assert query_records(engine) == []  # the key went with the effect's rollback

        first = UnitOfWork(engine, CommitSignal(), call_for(headers))  # the retry runs: nothing was kept
        with first.transaction() as session:
            assert next_value(session, NumberSequence, "effect") == 1
        assert first.idempotent_call.claimed
        assert query_records(engine) == [None]  # effect committed with its key, no answer yet
        with pytest.raises(Conflict) as pending, \
                UnitOfWork(engine, CommitSignal(), call_for(headers)).transaction() as session:
            next_value(session, NumberSequence, "effect")
        assert pending.value.code == "idempotent_request_pending"
        with first.transaction() as session:  # what IdempotentRpc does after the entrypoint returned
            first.idempotent_call.store(session, {"value": 1})
        with pytest.raises(idempotency.StoredAnswer) as replayed, \
                UnitOfWork(engine, CommitSignal(), call_for(headers)).transaction() as session:
            next_value(session, NumberSequence, "effect")
        assert replayed.value.answer == {"result": {"value": 1}}
        with Session(engine) as session, session.begin():
            assert next_value(session, NumberSequence, "effect") == 2  # the effect happened once
    finally:
        engine.dispose()


def query_records(engine) -> list:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text("select answer_json from idempotency_records"))]


SERVICES = [IdentityService, ScoringService, CertificatesService, PaymentsService, VerificationService]


@pytest.mark.parametrize("service_cls", SERVICES, ids=[s.name for s in SERVICES])
def test_every_service_prunes_its_expired_records_on_a_timer(start_service, service_cls):
    container, config = start_service(service_cls, IDEMPOTENCY_RECORD_TTL_HOURS="2")
    now = utcnow()
    engine = make_engine(config["DB_URI"])
    try:
        with engine.begin() as connection:
            for name, age in (("expired", timedelta(hours=2, minutes=1)), ("recent", timedelta(hours=1, minutes=59)),
                              ("new", timedelta(0))):
                connection.execute(insert(idempotency.IDEMPOTENCY_RECORDS).values(
                    record_key=name, target=f"{service_cls.name}.x", fingerprint="f", created_at=now - age,
                    answer_json=None))
    finally:
        engine.dispose()
    with entrypoint_hook(container, "prune_idempotency_records") as prune:  # what the timer runs
        prune()
    assert sorted(query(config["DB_URI"], "select record_key from idempotency_records")) == [("new",), ("recent",)]


def _identity_proxy(config: dict, headers: dict) -> ServiceRpcProxy:
    return ServiceRpcProxy("identity", {"AMQP_URI": config["AMQP_URI"]}, timeout=30, context_data=headers)


def _every_row(db_uri: str) -> str:
    models = importlib.import_module("services.identity.models")
    return repr([query(db_uri, f"select * from {table.name}") for table in models.Base.metadata.sorted_tables])


def test_after_sign_ins_with_idempotency_keys_no_token_code_or_password_is_kept_in_clear(start_service):
    container, config = start_service(IdentityService)
    db = config["DB_URI"]
    secrets_seen = [PASSWORD]
    with rpc_proxy("identity", config) as identity:
        secrets_seen.append(texted_code(identity))
    with _identity_proxy(config, gateway_headers("k-register", "register_candidate")) as identity:
        identity.register_candidate(registration(secrets_seen[-1]))
    login = {"login": MOBILE, "password": PASSWORD}
    with _identity_proxy(config, gateway_headers("k-login", "login", repr(login).encode())) as identity:
        signed_in = identity.login(login, "10.0.0.1")
        again = identity.login(login, "10.0.0.1")  # a retry with the same key is a new sign-in
    assert again["refresh_token"] != signed_in["refresh_token"]
    refresh = {"refresh_token": signed_in["refresh_token"]}
    with _identity_proxy(config, gateway_headers("k-refresh", "refresh_session")) as identity:
        refreshed = identity.refresh_session(refresh)
        with pytest.raises(Unauthorized):  # the retry presents a retired token: refused, not replayed
            identity.refresh_session(refresh)
    with rpc_proxy("identity", config) as identity:
        code = texted_code(identity, purpose="sign_in")
        messages = identity.dev_sms_messages({"mobile": MOBILE})["messages"]
    with _identity_proxy(config, gateway_headers("k-code", "login_with_code")) as identity:
        by_code = identity.login_with_code({"mobile": MOBILE, "code": code})
    with _identity_proxy(config, gateway_headers("k-logout", "logout")) as identity:
        identity.logout({"refresh_token": by_code["refresh_token"]})
    secrets_seen += [code, signed_in["refresh_token"], again["refresh_token"], refreshed["refresh_token"],
                     by_code["refresh_token"], *messages]
    secrets_seen += [token.partition(".")[2] for token in secrets_seen if "." in token]  # the secret halves
    rows = _every_row(db)
    assert [secret for secret in secrets_seen if secret in rows] == []
    assert all(re.search(r"\b\d{6}\b", message) for message in messages)  # the dev adapter still reads them back
    # only the routes whose answer is no credential kept a record, and each answer is sealed
    records = query(db, "select target, answer_json from idempotency_records order by target")
    assert [target for target, _ in records] == ["identity.logout", "identity.register_candidate"]
    assert all(answer.startswith("v1:") for _, answer in records)


def _commit_whose_answer_is_lost(engine, monkeypatch, commits: bool, then=None) -> None:
    """The next COMMITs on ``engine`` reach the server (``commits``) or not, and the answer never comes back: the
    connection breaks, as when the primary crashes with the COMMIT in flight (the fault suite's failover)."""
    dialect = engine.dialect
    real_commit = dialect.do_commit

    def commit(dbapi_connection):
        if commits:
            real_commit(dbapi_connection)
        else:
            dbapi_connection.rollback()
        if then is not None:
            then()
        raise dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dialect, "do_commit", commit)
    monkeypatch.setattr(dialect, "is_disconnect", lambda error, *_args: "server closed" in str(error))


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "not-committed"])
def test_a_commit_whose_answer_was_lost_is_told_by_its_idempotency_record(databases, monkeypatch, committed):
    """docs/operations.md, "Running on PostgreSQL with a streaming standby": the connection breaks while the
    COMMIT of an idempotent call's first transaction is in flight. If it happened, this attempt's record is there
    and the call goes on as after any commit (its answer is stored later; a retry is not told "pending" for
    good); if not, the error stands and a retry runs the call again. The fault suite found the first case: a
    payment whose claiming commit reached the promoted standby, retried for 150 s with 409 pending."""
    from sqlalchemy.exc import OperationalError

    from credence_common.persistence.db import CommitSignal, UnitOfWork
    from credence_common.persistence.sequences import next_value
    from services.identity.models import NumberSequence

    engine = make_engine(databases.create("identity"))
    headers = gateway_headers(f"key-lost-{committed}", "register_candidate")
    try:
        attempt = UnitOfWork(engine, CommitSignal(), call_for(headers))
        with monkeypatch.context() as patched:
            _commit_whose_answer_is_lost(engine, patched, commits=committed)
            if committed:
                with attempt.transaction() as session:  # no error: the record says the COMMIT happened
                    next_value(session, NumberSequence, "effect")
            else:
                with pytest.raises(OperationalError), attempt.transaction() as session:
                    next_value(session, NumberSequence, "effect")
        if committed:
            with attempt.transaction() as session:  # what IdempotentRpc then does
                attempt.idempotent_call.store(session, {"value": 1})
            with pytest.raises(idempotency.StoredAnswer), \
                    UnitOfWork(engine, CommitSignal(), call_for(headers)).transaction() as session:
                next_value(session, NumberSequence, "effect")
        else:
            assert query_records(engine) == []
            with UnitOfWork(engine, CommitSignal(), call_for(headers)).transaction() as session:  # the retry runs
                next_value(session, NumberSequence, "effect")
        with Session(engine) as session, session.begin():
            assert next_value(session, NumberSequence, "effect") == 2  # the effect happened once either way
    finally:
        engine.dispose()


def test_a_later_attempts_record_is_not_taken_for_the_lost_commits(databases, monkeypatch):
    """The COMMIT did not happen, and meanwhile a retry of the same request claimed the key: its record is not
    this attempt's (another created_at), so the error stands and nothing is taken for done."""
    from sqlalchemy.exc import OperationalError

    from credence_common.persistence.db import CommitSignal, UnitOfWork
    from credence_common.persistence.sequences import next_value
    from services.identity.models import NumberSequence

    engine = make_engine(databases.create("identity"))
    headers = gateway_headers("key-lost-retried", "register_candidate")
    other = make_engine(str(engine.url.render_as_string(hide_password=False)))

    def a_retry_claims_the_key():
        with Session(other) as session, session.begin():
            call_for(headers).claim(session, now=utcnow() + timedelta(seconds=1))

    try:
        with monkeypatch.context() as patched:
            _commit_whose_answer_is_lost(engine, patched, commits=False, then=a_retry_claims_the_key)
            with pytest.raises(OperationalError), \
                    UnitOfWork(engine, CommitSignal(), call_for(headers)).transaction() as session:
                next_value(session, NumberSequence, "effect")
        assert query_records(engine) == [None]  # the retry's record, whose answer the retry will store
    finally:
        other.dispose()
        engine.dispose()
