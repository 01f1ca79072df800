"""The honest baselines of bench/ do the same work as Credence and give the same answers (issue #18: a baseline
that did less would flatter it). PostgreSQL only: the baselines use psycopg2."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy.orm import Session

from bench import result_reading
from bench.honest_reads import JWT_SECRET, honest_results_app
from credence_common.persistence.db import make_engine
from gateway.auth import TokenService
from gateway.statuses import http_status
from services.scoring import usecases


def _answer(app, environ: dict) -> tuple[str, dict]:
    """A WSGI app's status line and JSON body for one request."""
    answered = {}
    body = b"".join(app(environ, lambda status, headers: answered.setdefault("status", status)))
    return answered["status"], json.loads(body)


def _get(app, token: str | None) -> tuple[str, dict]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return _answer(app, environ)


def test_the_reading_baseline_answers_what_scoring_answers(databases, tmp_path, monkeypatch):
    if databases.backend != "postgresql":
        pytest.skip("the baselines run on PostgreSQL (psycopg2)")
    db_uri = databases.create("scoring")
    result_reading.seed_results(db_uri, 3, tmp_path)
    monkeypatch.setenv("BENCH_DB_DSN", db_uri)
    monkeypatch.setenv("JWT_SECRET", JWT_SECRET)
    app = honest_results_app()
    tokens = TokenService(JWT_SECRET)
    engine = make_engine(db_uri)
    try:
        for n in range(3):
            candidate = result_reading.candidate_id(n)
            status, answer = _get(app, tokens.issue(candidate, "candidate")["access_token"])
            with Session(engine) as session:
                expected = usecases.results_for_candidates(session, [candidate])[candidate].model_dump(mode="json")
            assert status.startswith("200") and len(answer["results"]) == len(result_reading.COURSES)
            # in the same order where the order is defined (sitting, program); ties may come either way in both
            assert sorted(answer["results"], key=lambda r: r["result_id"]) == sorted(
                expected["results"], key=lambda r: r["result_id"])
    finally:
        engine.dispose()
    assert _get(app, None)[0].startswith("401")
    assert _get(app, tokens.issue("staff-1", "staff")["access_token"])[0].startswith("403")


def _post(app, body: dict, client: str) -> tuple[str, dict]:
    raw = json.dumps(body).encode()
    return _answer(app, {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_LENGTH": str(len(raw)),
                         "REMOTE_ADDR": client, "wsgi.input": io.BytesIO(raw)})


def test_the_check_baseline_answers_what_verification_answers(databases, tmp_path, monkeypatch):
    if databases.backend != "postgresql":
        pytest.skip("the baselines run on PostgreSQL (psycopg2)")
    from bench import honest
    from bench.baselines import honest_app
    from credence_common.contracts.certificate_numbers import format_certificate_number
    from credence_common.contracts.errors import CredenceError
    from credence_common.contracts.verification import PublicCheck
    from services.verification import usecases as verification

    db_uri = databases.create("verification")
    honest.seed_certificates(db_uri, 60, tmp_path)
    monkeypatch.setenv("BENCH_DB_DSN", db_uri)
    app = honest_app()
    bodies = [*honest.check_mix(60, 12, seed=7).bodies,  # the load's own mix
              {"holder_name": honest.holder_name(3), "certificate_number": honest.certificate_number(3)},  # valid
              {"holder_name": honest.wrong_name(3), "certificate_number": honest.certificate_number(3)},
              {"holder_name": honest.holder_name(3), "certificate_number": format_certificate_number(
                  honest.SEEDED_YEAR, honest.UNKNOWN_REGION, 12345)},  # a number nobody holds
              {"holder_name": honest.holder_name(49), "certificate_number": honest.certificate_number(49)},  # revoked
              {"holder_name": "王某", "certificate_number": "202531000000001"}]  # a wrong check digit
    engine = make_engine(db_uri)
    statuses = set()
    try:
        for body in bodies:
            status, answer = _post(app, body, "127.0.0.9")
            statuses.add(status[:3])
            with engine.begin() as connection:
                [expected] = verification.public_checks(connection, [(PublicCheck(**body), "127.0.0.9")])
            if isinstance(expected, CredenceError):
                assert (int(status[:3]), answer["error"]["code"]) == (http_status(expected), expected.code), body
            else:
                assert status.startswith("200") and answer == expected.model_dump(mode="json"), body
    finally:
        engine.dispose()
    assert statuses == {"200", "404", "422"}  # every kind of answer was compared
