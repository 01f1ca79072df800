"""The two baselines the public-check benchmark measures the platform against, each run as its own process:

    python -m bench.baselines wsgi PORT DB_URI       # a plain threaded WSGI app: the same lookup, straight from
                                                     # verification's database, in one process
    python -m bench.baselines echo AMQP_URI QUEUE    # a raw RabbitMQ RPC echo (pika): the bus's own round trip
    python -m bench.baselines results PORT DB_URI JWT_SECRET   # a candidate's results: the token checked as the
                                                     # gateway does, the same query as scoring, in one process
    gunicorn -k gthread ... 'bench.baselines:honest_app()'   # the public check as a competent team would deploy
                                                     # it: psycopg2, keep-alive, verification's work per check
                                                     # (BENCH_DB_DSN, CHECKS_PER_NUMBER_PER_MINUTE from the env)
"""

from __future__ import annotations

import hmac
import json
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pika
from sqlalchemy import text

from credence_common.contracts.certificate_numbers import normalise_certificate_number
from credence_common.persistence.db import make_engine
from services.verification.domain import name_key


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections at 32 clients: seconds-long p99


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def wsgi_app(db_uri: str):
    engine = make_engine(db_uri)
    query = text("SELECT holder_name_key, status FROM verifiable_certificates WHERE certificate_number = :n")

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        number = normalise_certificate_number(str(body.get("certificate_number", "")))
        with engine.connect() as connection:
            row = connection.execute(query, {"n": number}).first() if number else None
        found = row is not None and hmac.compare_digest(row[0].encode(), name_key(body.get("holder_name", "")).encode())
        status = "200 OK" if found else "404 Not Found"
        payload = json.dumps({"result": row[1]} if found else {"error": {"code": "certificate_not_found"}}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    return app


HONEST_QUERY = """
SELECT v.holder_name_key, v.status, v.holder_name, v.resident_id_number_masked, v.program_code, v.program_name,
       v.issued_on, f.failures, f.caller_failed
FROM (SELECT count(*) AS failures, coalesce(bool_or(client = %(client)s), false) AS caller_failed
      FROM check_log WHERE certificate_number = %(number)s AND checked_at > %(since)s
      AND outcome IN ('no_match', 'rate_limited')) f
LEFT JOIN verifiable_certificates v ON v.certificate_number = %(number)s
"""
HONEST_LOG = "INSERT INTO check_log (checked_at, certificate_number, outcome, client) VALUES (%s, %s, %s, %s)"


def thread_cursor(dsn: str):
    """A cursor on this thread's own psycopg2 connection (autocommit), connected on first use: a gthread
    worker's threads each keep one, as a team would write it."""
    import threading

    import psycopg2

    local = threading.local()

    def cursor():
        if getattr(local, "connection", None) is None or local.connection.closed:
            local.connection = psycopg2.connect(dsn)
            local.connection.autocommit = True
        return local.connection.cursor()

    return cursor


def json_answer(start_response, status: str, body: dict) -> list[bytes]:
    payload = json.dumps(body, ensure_ascii=False).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def honest_app():
    """What verification does for one public check (services/verification/usecases.public_checks), written as
    a competent team would in a plain WSGI app: one psycopg2 connection per worker thread (autocommit), one
    round trip for the certificate and the number's recent failures, one for the check_log row; the same
    answers (200 valid/revoked/superseded with the masked details, 404 certificate_not_found, 429
    rate_limited, 422 invalid_certificate_number / invalid_input)."""
    import os
    from datetime import UTC, datetime, timedelta

    from credence_common.security.masking import mask_name, mask_resident_id_public
    from services.verification.domain import answers_truthfully

    cursor = thread_cursor(os.environ["BENCH_DB_DSN"])
    limit = int(os.environ.get("CHECKS_PER_NUMBER_PER_MINUTE", "20"))
    answer = json_answer

    def refusal(start_response, status: str, code: str, message: str):
        return answer(start_response, status, {"error": {"code": code, "message": message}})

    def app(environ, start_response):
        try:
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            name, raw_number = body["holder_name"].strip(), body["certificate_number"].strip()
            if set(body) != {"holder_name", "certificate_number"} or not (0 < len(name) <= 40) or not (
                    0 < len(raw_number) <= 40):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return refusal(start_response, "422 Unprocessable Entity", "invalid_input", "Invalid input.")
        client = (environ.get("REMOTE_ADDR") or "")[:64]
        now = datetime.now(UTC)
        number = normalise_certificate_number(raw_number)
        with cursor() as cur:
            if number is None:
                cur.execute(HONEST_LOG, (now, raw_number[:40], "invalid", client))
                return refusal(start_response, "422 Unprocessable Entity", "invalid_certificate_number",
                               "A certificate number has 15 digits and its last digit is a check digit; please "
                               "check for a typing mistake.")
            cur.execute(HONEST_QUERY, {"client": client, "number": number, "since": now - timedelta(minutes=1)})
            key, status, holder, resident, program_code, program_name, issued_on, failures, caller_failed = \
                cur.fetchone()
            expected = key if key is not None else name_key("\u0000" + number)
            matches = hmac.compare_digest(expected.encode(), name_key(name).encode())
            if not answers_truthfully(failures, caller_failed, key is not None and matches, limit):
                cur.execute(HONEST_LOG, (now, number, "rate_limited", client))
                return refusal(start_response, "429 Too Many Requests", "rate_limited",
                               "This certificate number was checked too often; wait a minute.")
            if key is None or not matches:
                cur.execute(HONEST_LOG, (now, number, "no_match", client))
                return refusal(start_response, "404 Not Found", "certificate_not_found",
                               "No certificate matches this holder name and number.")
            cur.execute(HONEST_LOG, (now, number, status, client))
        return answer(start_response, "200 OK", {"result": status, "certificate": {
            "certificate_number": number, "holder_name_masked": mask_name(holder),
            "resident_id_number_masked": mask_resident_id_public(resident), "program_code": program_code,
            "program_name": program_name, "issued_on": issued_on.isoformat()}})

    return app


def results_app(db_uri: str, jwt_secret: str):
    from gateway.auth import TokenService

    tokens = TokenService(jwt_secret)
    engine = make_engine(db_uri)
    query = text("SELECT r.result_id, r.ticket_number, r.program_code, p.program_name, r.course_code, r.sitting, "
                 "r.outcome, r.final_score, r.published_at FROM exam_results r JOIN programs p "
                 "ON p.program_code = r.program_code WHERE r.candidate_id = :candidate "
                 "ORDER BY r.sitting, r.program_code")

    def app(environ, start_response):
        principal = tokens.principal_from_header(environ.get("HTTP_AUTHORIZATION"))
        with engine.connect() as connection:
            rows = connection.execute(query, {"candidate": principal.subject}).all()
        payload = json.dumps({"results": [
            {"result_id": r[0], "ticket_number": r[1], "program_code": r[2], "program_name": r[3],
             "course_code": r[4] or None, "sitting": r[5], "status": r[6], "final_score": r[7],
             "published_at": r[8].isoformat() if r[8] else None} for r in rows]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    return app


def serve_wsgi(port: int, db_uri: str, app=None) -> None:
    with make_server("127.0.0.1", port, app or wsgi_app(db_uri), server_class=ThreadingWSGIServer,
                     handler_class=QuietHandler) as server:
        print("ready", flush=True)
        server.serve_forever()


def serve_echo(amqp_uri: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=True)

    def reply(ch, method, properties, body):
        ch.basic_publish("", properties.reply_to, body,
                         pika.BasicProperties(correlation_id=properties.correlation_id))
        ch.basic_ack(method.delivery_tag)

    channel.basic_qos(prefetch_count=64)
    channel.basic_consume(queue, reply)
    print("ready", flush=True)
    channel.start_consuming()


class EchoClient:
    """One connection, direct reply-to: the shortest RPC RabbitMQ offers."""

    def __init__(self, amqp_uri: str, queue: str):
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        self.channel = self.connection.channel()
        self.queue = queue
        self.answer = None
        self.channel.basic_consume("amq.rabbitmq.reply-to", self._on_reply, auto_ack=True)

    def _on_reply(self, ch, method, properties, body):
        self.answer = body

    def call(self, body: bytes = b'{"holder_name":"x","certificate_number":"202611000000018"}') -> bytes:
        self.answer = None
        self.channel.basic_publish("", self.queue, body,
                                   pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="1"))
        while self.answer is None:
            self.connection.process_data_events(time_limit=1)
        return self.answer

    def close(self):
        self.connection.close()


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    if kind == "wsgi":
        serve_wsgi(int(rest[0]), rest[1])
    elif kind == "results":
        serve_wsgi(int(rest[0]), rest[1], results_app(rest[1], rest[2]))
    else:
        serve_echo(rest[0], rest[1])
