"""The whole platform over HTTP: one candidate's journey, bad input, roles, operations, the event channels'
document, and public verification surviving the death of the certificates service."""

from __future__ import annotations

import re
import urllib.parse
from datetime import datetime, timedelta

import requests

from credence_common.calendar import business_day
from credence_common.contracts.certificate_numbers import format_certificate_number
from credence_common.contracts.envelope import utcnow
from credence_common.security.masking import mask_name
from deploy.journey import wait_until
from services.payments import domain as payments_domain
from tests.e2e.conftest import SECRETS

# also against the nameko gateway (GATEWAY_SERVER=nameko), on SQLite (tests/e2e/conftest.py)
ALSO_ON_THE_NAMEKO_GATEWAY = True
def post(platform, path, token=None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(platform.gateway_url + path, headers=headers, timeout=15, **kwargs)


def get(platform, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(platform.gateway_url + path, headers=headers, timeout=15)


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return body["error"]["code"]


def test_the_journey_ends_in_a_valid_public_check_with_masked_details(platform, journey):
    verdict = journey["verdict"]
    assert verdict["result"] == "valid"
    certificate = verdict["certificate"]
    assert certificate["certificate_number"] == journey["certificate"]["certificate_number"]
    assert re.fullmatch(r"\d{15}", certificate["certificate_number"])
    # public answers show only the last four: the region code and a known birthday would give back the rest
    assert certificate["resident_id_number_masked"] == "*" * 14 + journey["resident_id_number"][-4:]
    assert "*" in certificate["holder_name_masked"]
    assert journey["order"]["amount_fen"] == 6000
    assert len(journey["lines"]) >= 9


def test_personal_data_never_appears_in_responses_or_logs(platform, journey):
    me = get(platform, "/api/v1/me", journey["candidate_token"])
    assert me.status_code == 200
    resident_id = journey["resident_id_number"]
    assert resident_id not in me.text and me.json()["mobile_masked"].count("*") == 4
    for spec_log in platform.log_dir.glob("*.log"):
        text = spec_log.read_text(errors="replace")
        assert resident_id not in text, f"resident ID number leaked into {spec_log.name}"
        assert resident_id[:-1] not in text


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(platform, journey):
    malformed = post(platform, "/api/v1/candidates", data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and error_code(malformed) == "malformed_json"

    nested = post(platform, "/api/v1/certificate-checks", data=b"[" * 5000)
    assert nested.status_code == 400 and error_code(nested) == "malformed_json"
    not_an_object = post(platform, "/api/v1/certificate-checks", json=[1, 2])
    assert not_an_object.status_code == 422
    nul = post(platform, "/api/v1/auth/login", json={"login": "\u0000", "password": "x"})
    assert nul.status_code == 422 and error_code(nul) == "invalid_characters"

    huge = post(platform, "/api/v1/candidates", data=b"x" * (3 * 1024 * 1024))
    assert huge.status_code == 400 and error_code(huge) == "payload_too_large"

    missing = post(platform, "/api/v1/candidates", json={"full_name": "王小明"})
    assert missing.status_code == 422 and error_code(missing) == "invalid_input"
    assert {d["field"] for d in missing.json()["error"]["details"]} >= {"resident_id_number", "mobile"}

    mistyped = post(platform, "/api/v1/exam-results", journey["staff_token"],
                    json={"results": [{"ticket_number": journey["ticket_number"], "program_code": "PSY-COUNSELLOR",
                                       "sitting": "2026-11", "final_score": "eighty"}]})
    assert mistyped.status_code == 422

    unknown = post(platform, "/api/v1/certificate-checks", json={
        "holder_name": journey["full_name"], "certificate_number": format_certificate_number(1999, "11", 1)})
    assert unknown.status_code == 404 and error_code(unknown) == "certificate_not_found"

    number = journey["certificate"]["certificate_number"]
    typo = number[:-2] + number[-1] + number[-2]
    if typo != number:
        mistyped_number = post(platform, "/api/v1/certificate-checks",
                               json={"holder_name": journey["full_name"], "certificate_number": typo})
        assert mistyped_number.status_code in (404, 422)

    orders_before = get(platform, "/api/v1/me/payment-orders", journey["candidate_token"]).json()
    payment = journey["payment"]
    body = payment["notification_body"].encode()
    headers = dict(payment["notification_headers"])
    forger = payments_domain.load_private_key("not-the-provider's-key")
    forged_headers = {**headers, "Sandbox-Nonce": "forged-nonce", "Sandbox-Signature": payments_domain.sign(
        forger, payments_domain.signing_message(headers["Sandbox-Timestamp"], "forged-nonce", body))}
    forged = post(platform, "/api/v1/payments/notifications/sandbox", data=body, headers=forged_headers)
    assert forged.status_code == 401 and error_code(forged) == "invalid_signature"
    # a copy of the notification already applied is answered as done (a provider retries anything else) and
    # changes nothing
    replayed = post(platform, "/api/v1/payments/notifications/sandbox", data=body, headers=headers)
    assert replayed.status_code == 200 and replayed.json()["duplicate"] is True
    assert get(platform, "/api/v1/me/payment-orders", journey["candidate_token"]).json() == orders_before
    certificates = get(platform, "/api/v1/me/certificates", journey["candidate_token"]).json()["certificates"]
    assert len(certificates) == 1 and certificates[0]["certificate_number"] == number


def test_roles_and_tokens_are_enforced(platform, journey):
    anonymous = get(platform, "/api/v1/me")
    assert anonymous.status_code == 401 and error_code(anonymous) == "authentication_required"
    garbage = get(platform, "/api/v1/me", "not-a-jwt")
    assert garbage.status_code == 401 and error_code(garbage) == "invalid_token"
    candidate_as_staff = post(platform, "/api/v1/exam-results/publication", journey["candidate_token"],
                              json={"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
    assert candidate_as_staff.status_code == 403
    wrong_password = post(platform, "/api/v1/auth/staff-token", json={"username": "admin", "password": "guess"})
    assert wrong_password.status_code == 401 and error_code(wrong_password) == "invalid_credentials"
    nowhere = get(platform, "/api/v1/nowhere")
    assert nowhere.status_code == 404 and error_code(nowhere) == "route_not_found"
    wrong_method = get(platform, "/api/v1/certificate-checks")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"


def test_operations_endpoints(platform, journey):
    assert get(platform, "/health").json() == {"status": "ok"}
    ready = get(platform, "/ready")
    assert ready.status_code == 200 and ready.json()["broker"] == "ok"
    assert ready.json()["services"] == {name: "ok" for name in
                                        ("identity", "scoring", "certificates", "payments", "verification")}
    assert get(platform, "/metrics").status_code == 404  # not on the public port: on the gateway's metrics port
    metrics = requests.get(f"http://127.0.0.1:{platform.env['GATEWAY_METRICS_PORT']}/metrics", timeout=5).text
    assert 'credence_entrypoint_calls_total{entrypoint="register_candidate",kind="http",outcome="ok",' \
           'service="gateway"}' in metrics
    for spec_name, port_env in (("identity", "IDENTITY_METRICS_PORT"), ("certificates", "CERTIFICATES_METRICS_PORT")):
        service_metrics = requests.get(f"http://127.0.0.1:{platform.env[port_env]}/metrics", timeout=5).text
        assert f'credence_outbox_backlog{{service="{spec_name}"}}' in service_metrics
        assert f'service="{spec_name}"' in service_metrics
        # the kinds the dashboard and the alerts select on (an entrypoint subclass must not become a kind)
        assert f'kind="rpc",outcome="ok",service="{spec_name}"' in service_metrics
    spec = get(platform, "/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/api/v1/certificate-checks" in spec["paths"]
    for service in ("identity", "scoring", "certificates", "payments", "verification"):
        probes = f"http://127.0.0.1:{platform.env[service.upper() + '_METRICS_PORT']}"
        assert requests.get(probes + "/health", timeout=5).json() == {"status": "ok"}
        ready = requests.get(probes + "/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_the_event_channels_are_served_beside_openapi_and_match_what_is_published(platform):
    """/asyncapi.json through the gateway: valid AsyncAPI 3.0 with a channel for every event type of the contract.
    Then a real event, caused by a registration over HTTP, arrives as its channel says (exchange, routing key,
    persistent, content type) and reads through the CloudEvents SDK as the example subscriber reads it, its body
    valid against the message schema the document declares, its correlationid the request's X-Request-Id."""
    import json
    import random

    import pika

    from credence_common.contracts.events import EVENTS_BY_TYPE, CandidateRegisteredV1
    from deploy import registry_subscriber
    from deploy.journey import Client, random_mobile, random_resident_id, read_dev_code
    from tests.unit.test_asyncapi import message_validator, official_problems

    served = get(platform, "/asyncapi.json")
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    document = served.json()
    assert official_problems(document) == []
    assert set(document["channels"]) == set(document["operations"]) == set(EVENTS_BY_TYPE)
    assert "/asyncapi.json" in get(platform, "/openapi.json").json()["paths"]
    wrong_method = post(platform, "/asyncapi.json", json={})
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]

    channel = document["channels"][CandidateRegisteredV1.event_type]
    exchange = channel["bindings"]["amqp"]["exchange"]
    (message_name,) = channel["messages"]
    message = document["components"]["messages"][message_name]
    operation = document["operations"][CandidateRegisteredV1.event_type]
    amqp_uri = platform.env["AMQP_URI"].replace("pyamqp://", "amqp://", 1)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        subscriber = connection.channel()
        # declared as the document says: the broker refuses a declaration unlike the platform's own
        subscriber.exchange_declare(exchange["name"], exchange_type=exchange["type"], durable=exchange["durable"],
                                    auto_delete=exchange["autoDelete"])
        queue = subscriber.queue_declare("", exclusive=True).method.queue
        subscriber.queue_bind(queue, exchange["name"], routing_key=channel["address"])

        rng = random.Random()
        mobile = random_mobile(rng)
        assert post(platform, "/api/v1/mobile-codes",
                    json={"mobile": mobile, "purpose": "registration"}).status_code == 202
        registered = post(platform, "/api/v1/candidates", json={
            "full_name": "赵敏", "resident_id_number": random_resident_id(rng), "mobile": mobile,
            "mobile_code": read_dev_code(Client(platform.gateway_url), mobile),
            "email": f"events.{rng.getrandbits(40):x}@example.com", "password": "Events-e2e-Pass1",
            "exam_region": "11"})
        assert registered.status_code == 201, registered.text
        candidate_id = registered.json()["candidate_id"]

        def ours():
            method, properties, body = subscriber.basic_get(queue, auto_ack=True)
            if method is not None and json.loads(body)["data"]["candidate_id"] == candidate_id:
                return method, properties, body
            return None

        method, properties, body = wait_until("the registration's event arrives", ours, 30)
    finally:
        connection.close()
    assert (method.exchange, method.routing_key) == (exchange["name"], channel["address"])
    assert properties.delivery_mode == operation["bindings"]["amqp"]["deliveryMode"] == 2
    assert properties.content_type == message["contentType"]
    assert properties.content_encoding == message["bindings"]["amqp"]["contentEncoding"]
    assert properties.type == message["bindings"]["amqp"]["messageType"] == CandidateRegisteredV1.event_type
    assert [error.message for error in message_validator(document, message_name).iter_errors(json.loads(body))] == []
    event = registry_subscriber.read_event(body, properties.content_type)  # the CloudEvents SDK
    assert event.get_type() == CandidateRegisteredV1.event_type and event.get_id() == properties.message_id
    assert event.get_source() == "/credence/identity" and event.get_subject() == candidate_id
    assert event.get_extension("correlationid") == registered.headers["X-Request-Id"]
    assert CandidateRegisteredV1.model_validate(event.get_data()).candidate_id == candidate_id


def test_public_verification_survives_the_certificates_service_dying(platform, journey):
    number = journey["certificate"]["certificate_number"]
    platform.kill("certificates")
    try:
        answer = post(platform, "/api/v1/certificate-checks",
                      json={"holder_name": journey["full_name"], "certificate_number": number})
        assert answer.status_code == 200 and answer.json()["result"] == "valid"
        form = urllib.parse.urlencode({"holder_name": journey["full_name"], "certificate_number": number})
        page = post(platform, "/verify", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert page.status_code == 200 and 'data-result="valid"' in page.text and number in page.text
    finally:
        from deploy.processes import BY_NAME

        platform.start_one(BY_NAME["certificates"])
        platform.wait_until_ready(BY_NAME["certificates"])
    mine = get(platform, "/api/v1/me/certificates", journey["candidate_token"])
    assert mine.status_code == 200 and mine.json()["certificates"][0]["status"] == "issued"


def test_accounts_over_http_sessions_recovery_and_owner_only_lookup(platform, journey):
    from deploy.journey import Client, read_dev_code

    client = Client(platform.gateway_url)
    login = post(platform, "/api/v1/auth/login", json={"login": journey["mobile"], "password": journey["password"]})
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["expires_in"] == 900 and tokens["refresh_token"]
    refreshed = post(platform, "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != tokens["refresh_token"]
    replayed = post(platform, "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replayed.status_code == 401 and error_code(replayed) == "invalid_refresh_token"

    wrong = post(platform, "/api/v1/auth/login", json={"login": journey["email"], "password": "Not-the-one-1"})
    unknown = post(platform, "/api/v1/auth/login", json={"login": "nobody@example.com", "password": "Not-the-one-1"})
    assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()

    sent = post(platform, "/api/v1/mobile-codes", json={"mobile": journey["mobile"], "purpose": "ticket_lookup"})
    assert sent.status_code == 202
    code = read_dev_code(client, journey["mobile"])
    found = post(platform, "/api/v1/ticket-lookups", json={"mobile": journey["mobile"], "code": code})
    assert found.status_code == 200 and found.json()["ticket_number"] == journey["ticket_number"]
    again = post(platform, "/api/v1/ticket-lookups", json={"mobile": journey["mobile"], "code": code})
    assert again.status_code == 422 and error_code(again) == "invalid_code"
    too_soon = post(platform, "/api/v1/mobile-codes", json={"mobile": journey["mobile"], "purpose": "ticket_lookup"})
    assert too_soon.status_code == 429 and error_code(too_soon) == "code_resend_too_soon"

    weak = post(platform, "/api/v1/me/password", journey["candidate_token"],
                json={"current_password": journey["password"], "new_password": "12345678"})
    assert weak.status_code == 422 and error_code(weak) == "weak_password"
    other = get(platform, "/api/v1/candidates/" + "0" * 36, journey["candidate_token"])
    assert other.status_code == 403


def test_result_files_upload_through_the_gateway(platform, journey):
    staff = journey["staff_token"]
    ticket = journey["ticket_number"]
    csv_file = ("ticket_number,program_code,course_code,sitting,score\n"
                f"{ticket},ZK-LAW,00015,2026-04,72\n{ticket},ZK-LAW,00227,2026-04,55\n").encode()
    first = post(platform, "/api/v1/result-imports?format=csv", staff, data=csv_file,
                 headers={"Content-Type": "text/csv"})
    assert first.status_code == 200 and first.json()["recorded"] == 2
    again = post(platform, "/api/v1/result-imports?format=csv", staff, data=csv_file)
    assert again.json()["status"] == "already_imported"
    bad = post(platform, "/api/v1/result-imports?format=csv", staff,
               data=b"ticket_number,program_code,course_code,sitting,score\n" + f"{ticket},ZK-LAW,00015,2026-04,99\n"
               .encode())
    assert bad.status_code == 422 and error_code(bad) == "import_rejected"
    batch_id = bad.json()["error"]["batch_id"]  # a field of the answer (#19 item 6)
    assert batch_id in bad.json()["error"]["message"]
    report = get(platform, f"/api/v1/result-imports/{batch_id}", staff).json()
    assert report["status"] == "rejected" and report["errors"][0]["line"] == 2
    download = get(platform, f"/api/v1/result-imports/{batch_id}/errors.csv", staff)
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    rows = download.text.splitlines()
    assert rows[0] == "line,field,message" and rows[1].startswith("2,score,")
    # an exam centre's own export names the candidate (姓名): checked against the roster (#19 item 6)
    named = "ticket_number,姓名,program_code,course_code,sitting,score\n"
    wrong_name = post(platform, "/api/v1/result-imports?format=csv", staff,
                      data=(named + f"{ticket},{journey['full_name']}x,ZK-LAW,00230,2026-04,66\n").encode())
    assert wrong_name.status_code == 422 and error_code(wrong_name) == "import_rejected"
    assert wrong_name.json()["error"]["details"][0]["field"] == "line 2: full_name"
    assert journey["full_name"] not in wrong_name.text
    right_name = post(platform, "/api/v1/result-imports?format=csv", staff,
                      data=(named + f"{ticket},{journey['full_name']},ZK-LAW,00230,2026-04,66\n").encode())
    assert right_name.status_code == 200 and right_name.json()["recorded"] == 1
    latin1 = post(platform, "/api/v1/result-imports?format=csv", staff, data="caf\xe9,1\n".encode("latin-1"))
    assert latin1.status_code == 422 and error_code(latin1) == "unsupported_encoding"
    as_candidate = post(platform, "/api/v1/result-imports?format=csv", journey["candidate_token"], data=csv_file)
    assert as_candidate.status_code == 403

    assert get(platform, "/api/v1/me/record", journey["candidate_token"]).json()["programs"][0]["program_code"] \
        == "PSY-COUNSELLOR"  # the law results are still sealed

    def law_results() -> list[dict]:
        return [r for r in get(platform, "/api/v1/me/results", journey["candidate_token"]).json()["results"]
                if r["program_code"] == "ZK-LAW"]
    # sealed results have no re-check window yet; the programs list says how long it is (#19 item 5)
    assert len(law_results()) == 3 and {r["review_window_ends_at"] for r in law_results()} == {None}
    programs = {p["program_code"]: p for p in requests.get(platform.gateway_url + "/api/v1/programs",
                                                           timeout=15).json()["programs"]}
    window_days = programs["ZK-LAW"]["review_window_days"]
    assert window_days == 15
    post(platform, "/api/v1/exam-results/publication", staff, json={"program_code": "ZK-LAW", "sitting": "2026-04"})
    for released in law_results():  # each released result shows until when it may be re-checked
        assert released["published_at"] is not None and released["review_window_ends_at"] is not None
        assert (datetime.fromisoformat(released["review_window_ends_at"])
                - datetime.fromisoformat(released["published_at"])) == timedelta(days=window_days)
    record = get(platform, "/api/v1/me/record", journey["candidate_token"]).json()
    law = next(p for p in record["programs"] if p["program_code"] == "ZK-LAW")
    assert {c["course_code"]: c["state"] for c in law["courses"]}["00015"] == "passed" and law["graduated"] is False


def test_a_result_file_too_large_for_the_request_is_accepted_and_followed_at_its_url(platform, journey):
    """Issue #19 item 6: a file over IMPORT_INLINE_MAX_BYTES (256 KiB) is answered 202 with status queued and the
    batch's URL in Location; the clerk follows it there until its report (here: every row refused, with the row
    errors as a CSV file), and nothing was imported."""
    staff = journey["staff_token"]
    rows = "".join(f"99999999{n:04d},ZK-LAW,00015,2026-04,70\n" for n in range(8000))
    big = ("ticket_number,program_code,course_code,sitting,score\n" + rows).encode()
    assert len(big) > 256 * 1024
    accepted = post(platform, "/api/v1/result-imports?format=csv", staff, data=big)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["status"] == "queued" and accepted.headers["Location"] == f"/api/v1/result-imports/{body['batch_id']}"
    again = post(platform, "/api/v1/result-imports?format=csv", staff, data=big)
    first_now = get(platform, accepted.headers["Location"], staff).json()
    # the same file is one upload while it waits; only once the first has ended (rejected, here: its scoring timer
    # may be that quick) is a new upload of it a new try
    assert again.status_code in (200, 202)
    assert again.json()["batch_id"] == body["batch_id"] or first_now["status"] == "rejected", (again.json(), first_now)
    seen = set()

    def finished():
        report = get(platform, accepted.headers["Location"], staff).json()
        seen.add(report["status"])
        return report if report["status"] not in ("queued", "processing") else None

    report = wait_until("the background import ends", finished, timeout=120)
    assert report["status"] == "rejected" and report["error_count"] == 8000 and report["row_count"] == 8000
    assert seen <= {"queued", "processing", "rejected"}
    errors = get(platform, f"/api/v1/result-imports/{body['batch_id']}/errors.csv", staff)
    assert errors.status_code == 200 and "unknown ticket" in errors.text.lower()
    assert get(platform, accepted.headers["Location"], journey["candidate_token"]).status_code == 403


def test_payments_over_http_fees_orders_refunds_and_reconciliation(platform, journey):
    staff, candidate = journey["staff_token"], journey["candidate_token"]
    order_number = journey["order"]["order_number"]
    fees = get(platform, "/api/v1/fees").json()["fees"]
    assert {f["fee_code"]: f["amount_fen"] for f in fees}["certificate_reissue"] == 10000
    changed = requests.put(platform.gateway_url + "/api/v1/fees/exam_fee_practical", timeout=15,
                           headers={"Authorization": f"Bearer {staff}"},
                           json={"description": "Practical exam", "amount_fen": 4500})
    assert changed.status_code == 200 and changed.json()["amount_fen"] == 4500
    floaty = requests.put(platform.gateway_url + "/api/v1/fees/exam_fee_practical", timeout=15,
                          headers={"Authorization": f"Bearer {staff}"},
                          json={"description": "Practical exam", "amount_fen": 45.5})
    assert floaty.status_code == 422

    dues = get(platform, "/api/v1/me/payment-dues", candidate).json()["dues"]
    assert [d["status"] for d in dues] == ["paid"]
    bad_key = post(platform, "/api/v1/payment-orders", candidate, json={"due_ids": [dues[0]["due_id"]]},
                   headers={"Idempotency-Key": "ü" * 3})
    assert bad_key.status_code == 422 and error_code(bad_key) == "invalid_idempotency_key"
    again = post(platform, "/api/v1/payment-orders", candidate, json={"due_ids": [dues[0]["due_id"]]})
    assert again.status_code == 409 and error_code(again) == "due_already_paid"
    mine = get(platform, f"/api/v1/payment-orders/{order_number}", candidate).json()
    assert mine["status"] in ("paid", "partially_refunded")
    # the payer's own invoice record: made out to their name, which an answer shows masked (staff see it whole)
    assert mine["invoice"]["title"] == mask_name(journey["full_name"]) != journey["full_name"]
    assert get(platform, f"/api/v1/payment-orders/{order_number}", staff).json()["invoice"]["title"] == \
        journey["full_name"]

    refund_request = {"order_number": order_number, "amount_fen": 1000, "reason": "goodwill",
                      "request_key": "e2e-goodwill"}
    assert post(platform, "/api/v1/refunds", candidate, json=refund_request).status_code == 403
    too_much = post(platform, "/api/v1/refunds", staff, json={**refund_request, "amount_fen": 999999,
                                                              "request_key": "e2e-too-much"})
    assert too_much.status_code == 422 and error_code(too_much) == "refund_exceeds_payment"
    refund = post(platform, "/api/v1/refunds", staff, json=refund_request)
    assert refund.status_code == 201 and refund.json()["status"] == "succeeded"
    assert post(platform, "/api/v1/refunds", staff, json=refund_request).json()["refund_number"] == \
        refund.json()["refund_number"]
    listed = get(platform, f"/api/v1/refunds?order_number={order_number}", staff).json()["refunds"]
    assert [r["amount_fen"] for r in listed] == [1000]
    assert get(platform, f"/api/v1/payment-orders/{order_number}", candidate).json()["status"] == \
        "partially_refunded"

    report = get(platform, f"/api/v1/payment-reconciliations/{business_day(utcnow()).isoformat()}", staff)
    assert report.status_code == 200, report.text
    assert report.json()["mismatches"] == [] and report.json()["refunds_matched"] >= 1
    assert get(platform, "/api/v1/payment-reconciliations/not-a-date", staff).status_code == 422
    incidents = get(platform, "/api/v1/payment-incidents", staff).json()["incidents"]
    assert "refund_exceeds_payment" in {i["code"] for i in incidents}


def test_verification_reports_over_http_and_their_qr_page(platform, journey):
    from deploy.journey import Client, read_dev_code

    # 本人查询: the holder signs in with a texted code, and sees their certificates and exam record
    asked = post(platform, "/api/v1/mobile-codes", json={"mobile": journey["mobile"], "purpose": "sign_in"})
    assert asked.status_code == 202, asked.text
    code = read_dev_code(Client(platform.gateway_url), journey["mobile"])
    signed_in = post(platform, "/api/v1/auth/code-login", json={"mobile": journey["mobile"], "code": code})
    assert signed_in.status_code == 200, signed_in.text
    candidate = signed_in.json()["access_token"]
    mine = get(platform, "/api/v1/me/certificates", candidate).json()["certificates"]
    assert [c["certificate_number"] for c in mine] == [journey["certificate"]["certificate_number"]]
    assert get(platform, "/api/v1/me/record", candidate).status_code == 200
    number = journey["certificate"]["certificate_number"]
    made = post(platform, "/api/v1/me/verification-reports", candidate, json={"certificate_number": number})
    assert made.status_code == 201, made.text
    report = made.json()
    assert report["verify_url"].endswith(f"/r/{report['report_code']}")
    page = requests.get(platform.gateway_url + f"/r/{report['report_code']}", timeout=15)
    assert page.status_code == 200 and 'data-result="valid"' in page.text
    assert journey["resident_id_number"] not in page.text and journey["full_name"] not in page.text
    unknown = requests.get(platform.gateway_url + "/r/" + "A" * 32, timeout=15)
    assert unknown.status_code == 404 and 'data-result="not_valid"' in unknown.text
    key = get(platform, "/api/v1/verification-reports/public-key").json()
    assert key["algorithm"] == "Ed25519" and "BEGIN PUBLIC KEY" in key["public_key_pem"]
    answer = get(platform, f"/api/v1/verification-reports/{report['report_code']}").json()
    from credence_common.security import signing
    from services.verification.domain import reports

    verdict = reports.verify_report(answer["signed_report"], signing.load_public_key(key["public_key_pem"]),
                                    utcnow(), report["verify_url"])
    assert verdict.verdict == "valid"
    pdf = requests.get(platform.gateway_url + f"/api/v1/me/verification-reports/{report['report_code']}/report.pdf",
                       headers={"Authorization": f"Bearer {candidate}"}, timeout=15)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    closed = post(platform, f"/api/v1/me/verification-reports/{report['report_code']}/closure", candidate)
    assert closed.json()["state"] == "closed"
    page = requests.get(platform.gateway_url + f"/r/{report['report_code']}", timeout=15)
    assert 'data-result="closed"' in page.text

    # a report on the exam record (考籍): verification asks scoring for it, signs what was achieved
    record_report = post(platform, "/api/v1/me/verification-reports", candidate, json={"kind": "education_record"})
    assert record_report.status_code == 201, record_report.text
    assert record_report.json()["kind"] == "education_record"
    page = requests.get(platform.gateway_url + f"/r/{record_report.json()['report_code']}", timeout=15)
    assert page.status_code == 200 and 'data-result="valid"' in page.text and "考籍在线验证报告" in page.text
    assert journey["full_name"] not in page.text and journey["resident_id_number"] not in page.text
    both = post(platform, "/api/v1/me/verification-reports", candidate,
                json={"kind": "education_record", "certificate_number": number})
    assert both.status_code == 422, both.text


def test_a_downloaded_report_verifies_offline_with_the_keys_the_gateway_publishes(platform, journey):
    """Issue #19 item 9: the PDF carries the whole signed report, the keys are at a well-known address, and the
    standalone verifier (verifier/, imported from its own directory) says valid, and tampered for a changed copy."""
    import io
    import json
    import sys
    from pathlib import Path

    from pypdf import PdfReader, PdfWriter

    from services.verification.domain import reports

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "verifier" / "src"))
    import credence_report_verifier as verifier

    signed_in = post(platform, "/api/v1/auth/login", json={"login": journey["mobile"], "password": journey["password"]})
    assert signed_in.status_code == 200, signed_in.text
    candidate = signed_in.json()["access_token"]
    made = post(platform, "/api/v1/me/verification-reports", candidate,
                json={"certificate_number": journey["certificate"]["certificate_number"]})
    assert made.status_code == 201, made.text
    code = made.json()["report_code"]
    pdf = requests.get(platform.gateway_url + f"/api/v1/me/verification-reports/{code}/report.pdf",
                       headers={"Authorization": f"Bearer {candidate}"}, timeout=15)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"

    published = get(platform, "/.well-known/credence-report-keys.json")
    assert published.status_code == 200, published.text
    assert published.headers["Cache-Control"] == "public, max-age=3600"
    assert published.headers["Access-Control-Allow-Origin"] == "*"
    key_set = published.json()
    [current] = key_set["keys"]
    assert (current["status"], current["kty"], current["crv"], current["retire_after"]) == \
        ("current", "OKP", "Ed25519", None)
    old_route = get(platform, "/api/v1/verification-reports/public-key").json()  # still there, the same key
    assert old_route["key_id"] == current["kid"] and old_route["public_key_pem"] == current["public_key_pem"]

    keys = verifier.load_keys(published.text)
    result = verifier.verify_pdf(pdf.content, keys, scan=True)
    assert result.verdict == "valid", (result.message, result.checks)
    assert result.key_id == current["kid"] and result.document["report_code"] == code
    assert "the signed QR code on the page: valid" in result.checks
    answer = get(platform, f"/api/v1/verification-reports/{code}").json()
    assert verifier.verify_signed(answer, keys).verdict == "valid"  # the online answer's JSON, as saved

    # a copy whose signed payload says another certificate number, under the original signature
    payload = PdfReader(io.BytesIO(pdf.content)).metadata["/CredenceReportPayload"]
    signed = reports.signed_from_payload(payload)
    signed["document"]["certificate"]["certificate_number"] = "202611000000026"
    forged = reports.compact_payload(signed)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf.content)))
    writer.add_metadata({"/CredenceReportPayload": forged})
    tampered = io.BytesIO()
    writer.write(tampered)
    assert verifier.verify_pdf(tampered.getvalue(), keys, scan=False).verdict == "tampered"

    # the same judgement through the gateway, and bad input answered 422 with a code and a message
    checked = post(platform, "/api/v1/verification-reports/signature-checks", json={"payload": payload})
    assert checked.status_code == 200 and checked.json()["verdict"] == "valid", checked.text
    assert checked.json()["document"]["report_code"] == code and checked.headers["Cache-Control"] == "no-store"
    checked = post(platform, "/api/v1/verification-reports/signature-checks", json={"payload": forged})
    assert checked.status_code == 200 and checked.json()["verdict"] == "tampered", checked.text
    checked = post(platform, "/api/v1/verification-reports/signature-checks",
                   json={"signed_report": answer["signed_report"]})
    assert checked.json()["verdict"] == "valid", checked.text
    for bad, code_expected in (({"payload": "HC1:NCFOXN%TS3DH"}, "malformed_report"),
                               ({"signed_report": {"document": {}}}, "malformed_report"),
                               ({}, "invalid_input"), ({"payload": payload, "signed_report": {}}, "invalid_input"),
                               ({"payload": 5}, "invalid_input"), ({"payload": "CRV1:" + "A" * 9000}, "invalid_input")):
        refused = post(platform, "/api/v1/verification-reports/signature-checks", json=bad)
        assert refused.status_code == 422 and error_code(refused) == code_expected, (bad, refused.text)
    refused = post(platform, "/api/v1/verification-reports/signature-checks", data=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and error_code(refused) == "malformed_json"
    wrong_method = post(platform, "/.well-known/credence-report-keys.json")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"
    assert json.loads(published.text) == key_set


def test_the_holder_sees_who_looked_by_every_channel_and_downloads_the_log(platform, journey):
    """issue #19 item 3, through the gateway: a public check (API and form) saying who checks and why, the report
    opened by its code, by its QR code and by a share code; the holder's log shows each with its channel, the
    masked address and what the verifier said, and the CSV download is the same log. Runs before the reissue
    below, while the journey's certificate is valid. Bad input is a 422 that logs nothing."""
    import csv
    import io
    import uuid

    signed_in = post(platform, "/api/v1/auth/login", json={"login": journey["email"], "password": journey["password"]})
    assert signed_in.status_code == 200, signed_in.text
    candidate = signed_in.json()["access_token"]
    number = journey["certificate"]["certificate_number"]
    marker = f"wl-{uuid.uuid4().hex[:8]}-zq"  # not hex: nothing else in a log line can look like it
    organisation, purpose = f"某某科技 HR {marker}", f"入职背景核查 <b>{marker}</b>"
    form_organisation, form_purpose = f"Form Org {marker}", f"=form purpose {marker}"
    made = post(platform, "/api/v1/me/verification-reports", candidate, json={"certificate_number": number})
    assert made.status_code == 201, made.text
    report = made.json()
    code = report["report_code"]
    assert report["qr_url"] == report["verify_url"] + "?via=qr"

    def my_log() -> dict:
        answer = get(platform, "/api/v1/me/certificate-accesses", candidate)
        assert answer.status_code == 200, answer.text
        return answer.json()

    checks_before = sum(a["channel"] == "public_check" for a in my_log()["accesses"])
    # who checks and why: by the API, and by the public form (its fields travel through the gateway's batch)
    checked = post(platform, "/api/v1/certificate-checks", json={
        "holder_name": journey["full_name"], "certificate_number": number, "organisation": organisation,
        "purpose": purpose})
    assert checked.status_code == 200 and checked.json()["result"] == "valid", checked.text
    form = urllib.parse.urlencode({"holder_name": journey["full_name"], "certificate_number": number,
                                   "organisation": form_organisation, "purpose": form_purpose})
    page = post(platform, "/verify", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert page.status_code == 200 and 'data-result="valid"' in page.text
    # the report by its code (the API, and its page's URL typed in), by its QR code, and with a share code
    assert get(platform, f"/api/v1/verification-reports/{code}").json()["state"] == "valid"
    assert 'data-result="valid"' in requests.get(report["verify_url"], timeout=15).text
    assert 'data-result="valid"' in requests.get(report["qr_url"], timeout=15).text
    shared = post(platform, f"/api/v1/me/verification-reports/{code}/share-codes", candidate, json={})
    assert shared.status_code == 201, shared.text
    opened = post(platform, "/api/v1/shared-reports", json={
        "share_code": shared.json()["share_code"], "verifier_name": "张经理", "organisation": organisation,
        "purpose": purpose})
    assert opened.status_code == 200, opened.text

    # bad input: a clear 422 with a code and a message, and nothing logged
    for too_long in ({"purpose": "p" * 201}, {"organisation": "o" * 101}):
        refused = post(platform, "/api/v1/certificate-checks", json={
            "holder_name": journey["full_name"], "certificate_number": number, **too_long})
        assert refused.status_code == 422 and error_code(refused) == "invalid_input", refused.text
        assert next(iter(too_long)) in refused.json()["error"]["message"]
    over_long_form = urllib.parse.urlencode({"holder_name": journey["full_name"], "certificate_number": number,
                                             "purpose": "p" * 201})
    refused_page = post(platform, "/verify", data=over_long_form,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused_page.status_code == 422 and 'data-result="not_valid"' in refused_page.text
    assert "purpose" in refused_page.text.split('id="result"')[1]  # the page says which field to fix
    assert requests.get(platform.gateway_url + "/r/" + "A" * 32 + "?via=qr", timeout=15).status_code == 404

    log = my_log()
    checks = [a for a in log["accesses"] if a["channel"] == "public_check"]
    assert len(checks) == checks_before + 2  # the two answered; the refused ones logged nothing
    ours = [a for a in log["accesses"]
            if marker in (a["organisation"] or "") or a["report_code"] == report["report_id"]]
    assert sorted((a["channel"], a["kind"], a["organisation"], a["purpose"]) for a in ours) == sorted([
        ("public_check", "public_check", organisation, purpose),
        ("public_check", "public_check", form_organisation, form_purpose),
        ("report_code", "report", None, None), ("report_code", "report", None, None),
        ("report_qr", "report", None, None),
        ("share_code", "full_report", organisation, purpose)])
    assert {a["certificate_number"] for a in ours} == {number}
    # the holder sees the caller's network, never the address (the tests call from 127.0.0.1)
    assert {a["address_masked"] for a in ours} == {"127.0.0.0/24"}
    assert "127.0.0.1" not in str(log) and code not in str(log)
    assert [a["verifier_name"] for a in ours if a["channel"] == "share_code"] == ["张经理"]

    download = requests.get(platform.gateway_url + "/api/v1/me/certificate-accesses.csv", timeout=15,
                            headers={"Authorization": f"Bearer {candidate}"})
    assert download.status_code == 200, download.text
    assert download.headers["Content-Type"].startswith("text/csv")
    assert download.headers["Content-Disposition"] == 'attachment; filename="certificate-accesses.csv"'
    text = download.content.decode("utf-8")
    assert text.startswith("\ufeff") and "127.0.0.1" not in text and code not in text
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == len(log["accesses"])  # the same log: nobody looked in between
    assert [(r["channel"], r["address_masked"], r["certificate_number"], r["organisation"]) for r in rows] == [
        (a["channel"], a["address_masked"], a["certificate_number"] or "", a["organisation"] or "")
        for a in log["accesses"]]
    # what a verifier typed cannot start a spreadsheet formula in the holder's download
    assert "'" + form_purpose in [r["purpose"] for r in rows] and form_purpose not in [r["purpose"] for r in rows]
    assert get(platform, "/api/v1/me/certificate-accesses.csv").status_code == 401
    staff = get(platform, "/api/v1/me/certificate-accesses.csv", journey["staff_token"])
    assert staff.status_code in (401, 403)  # staff never reads a holder's log (401 if its token has expired)
    # what a verifier typed about themselves stays out of every log line
    for process_log in platform.log_dir.glob("*.log"):
        assert marker not in process_log.read_text(errors="replace"), process_log.name


def test_certificates_over_http_batch_export_shipping_and_a_reissue(platform, journey):
    staff, candidate = journey["staff_token"], journey["candidate_token"]
    certificate = journey["certificate"]
    number = certificate["certificate_number"]
    batches = get(platform, "/api/v1/production-batches", staff).json()["batches"]
    batch = next(b for b in batches if b["status"] == "open")
    closed = post(platform, f"/api/v1/production-batches/{batch['batch_id']}/closure", staff)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    csv_file = requests.get(platform.gateway_url + f"/api/v1/production-batches/{batch['batch_id']}/export.csv",
                            headers={"Authorization": f"Bearer {staff}"}, timeout=15)
    assert csv_file.status_code == 200 and csv_file.headers["Content-Type"].startswith("text/csv")
    assert number in csv_file.text and journey["resident_id_number"] not in csv_file.text
    pdf = requests.get(platform.gateway_url + f"/api/v1/production-batches/{batch['batch_id']}/proof.pdf",
                       headers={"Authorization": f"Bearer {staff}"}, timeout=15)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert get(platform, f"/api/v1/production-batches/{batch['batch_id']}/export.csv", candidate).status_code == 403

    certificate_id = certificate["certificate_id"]
    shipped = post(platform, f"/api/v1/certificates/{certificate_id}/shipment", staff,
                   json={"courier": "EMS", "tracking_number": "EA123456789CN"})
    assert shipped.status_code == 200 and shipped.json()["delivery_status"] == "shipped"
    mine = get(platform, f"/api/v1/me/certificates/{certificate_id}", candidate).json()
    assert mine["tracking_number"] == "EA123456789CN"
    assert mine["level"] == "三级 Level 3" and mine["qualified_on"] and mine["photo_reference"]
    history = get(platform, f"/api/v1/me/certificates/{certificate_id}/history", candidate).json()["entries"]
    assert [e["action"] for e in history][-3:] == ["queued", "printing", "shipped"]

    # 补办: a reissue, paid at the sandbox, processed by staff; the old number stops verifying
    applied = post(platform, f"/api/v1/me/certificates/{certificate_id}/replacement-applications", candidate,
                   json={"kind": "reissue", "reason": "Lost in a move"})
    assert applied.status_code == 201, applied.text
    application_id = applied.json()["application_id"]
    again = post(platform, f"/api/v1/me/certificates/{certificate_id}/replacement-applications", candidate,
                 json={"kind": "reissue", "reason": "twice"})
    assert again.status_code == 409 and error_code(again) == "replacement_in_progress"

    def reissue_due():
        dues = get(platform, "/api/v1/me/payment-dues", candidate).json()["dues"]
        return next((d for d in dues if d["reference_id"] == application_id), None)

    due = wait_until("the reissue fee is due", reissue_due)
    assert due["amount_fen"] == 10000 and due["purpose"] == "certificate_reissue"
    order = post(platform, "/api/v1/payment-orders", candidate, json={"due_ids": [due["due_id"]]},
                 headers={"Idempotency-Key": "reissue-1"}).json()
    paid = post(platform, f"/api/v1/sandbox-provider/orders/{order['order_number']}/payment", candidate, json={})
    assert paid.json()["acknowledgement"]["status"] == "paid"
    wait_until("the application is paid", lambda: get(
        platform, "/api/v1/me/replacement-applications", candidate).json()["applications"][0]["status"] == "pending")
    assert post(platform, f"/api/v1/replacement-applications/{application_id}/start", candidate).status_code == 403
    assert post(platform, f"/api/v1/replacement-applications/{application_id}/start", staff).json()["status"] == \
        "processing"
    done = post(platform, f"/api/v1/replacement-applications/{application_id}/completion", staff).json()
    assert done["status"] == "completed"
    new = get(platform, f"/api/v1/me/certificates/{done['new_certificate_id']}", candidate).json()
    assert new["status"] == "issued" and new["certificate_number"] != number

    def check(certificate_number):
        return post(platform, "/api/v1/certificate-checks",
                    json={"holder_name": journey["full_name"], "certificate_number": certificate_number})

    wait_until("the new number verifies", lambda: check(new["certificate_number"]).status_code == 200)
    wait_until("the old number answers superseded", lambda: check(number).json()["result"] == "superseded")
    page = requests.post(platform.gateway_url + "/verify", timeout=15,
                         data={"holder_name": journey["full_name"], "certificate_number": number})
    assert 'data-result="superseded"' in page.text


def test_an_unpaid_replacement_is_withdrawn_or_cancelled_and_its_due_goes_with_it(platform):
    """Issue #19 item 8, through the gateway: a candidate withdraws an unpaid reissue (its due is cancelled and
    the order opened for it closed), staff cancel the next one, bad requests change nothing, and the certificate
    stays issued and verifiable throughout."""
    from deploy.journey import run_journey

    mine = run_journey(platform.gateway_url, say=lambda _line: None,
                       staff_password=SECRETS["BOOTSTRAP_STAFF_PASSWORD"])
    candidate, staff = mine["candidate_token"], mine["staff_token"]
    certificate_id = mine["certificate"]["certificate_id"]
    applications = f"/api/v1/me/certificates/{certificate_id}/replacement-applications"

    def due_for(application_id):
        dues = get(platform, "/api/v1/me/payment-dues", candidate).json()["dues"]
        return next((d for d in dues if d["reference_id"] == application_id), None)

    first = post(platform, applications, candidate, json={"kind": "reissue", "reason": "Lost in a move"}).json()
    due = wait_until("the reissue fee is due", lambda: due_for(first["application_id"]))
    order = post(platform, "/api/v1/payment-orders", candidate, json={"due_ids": [due["due_id"]]},
                 headers={"Idempotency-Key": f"withdraw-{first['application_id']}"}).json()
    assert order["status"] == "created"
    withdrawal = f"/api/v1/me/replacement-applications/{first['application_id']}/withdrawal"
    assert post(platform, withdrawal, staff).status_code == 403  # the candidate's to withdraw; staff cancel
    withdrawn = post(platform, withdrawal, candidate)
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["status"], withdrawn.json()["cancel_reason"]) == ("cancelled",
                                                                               "Withdrawn by the candidate.")
    again = post(platform, withdrawal, candidate)
    assert again.status_code == 409 and error_code(again) == "illegal_transition"
    wait_until("the due is cancelled", lambda: due_for(first["application_id"])["status"] == "cancelled")
    assert get(platform, f"/api/v1/payment-orders/{order['order_number']}", candidate).json()["status"] == "closed"
    late = post(platform, f"/api/v1/sandbox-provider/orders/{order['order_number']}/payment", candidate, json={})
    assert late.status_code == 409 and error_code(late) == "payment_refused_by_provider"  # closed there too
    unknown = post(platform, "/api/v1/me/replacement-applications/no-such-application/withdrawal", candidate)
    assert unknown.status_code == 404 and error_code(unknown) == "application_not_found"

    # the withdrawn one no longer blocks: a second application, which staff cancel before it is paid
    second = post(platform, applications, candidate, json={"kind": "reissue", "reason": "Still lost"})
    assert second.status_code == 201, second.text
    second_id = second.json()["application_id"]
    wait_until("the second fee is due", lambda: due_for(second_id))
    cancellation = f"/api/v1/replacement-applications/{second_id}/cancellation"
    no_reason = post(platform, cancellation, staff, json={})
    assert no_reason.status_code == 422
    assert post(platform, cancellation, candidate, json={"reason": "mine"}).status_code == 403
    cancelled = post(platform, cancellation, staff, json={"reason": "Please apply at the office"})
    assert cancelled.status_code == 200 and cancelled.json()["cancel_reason"] == "Please apply at the office"
    wait_until("the second due is cancelled", lambda: due_for(second_id)["status"] == "cancelled")
    listed = get(platform, "/api/v1/me/replacement-applications", candidate).json()["applications"]
    assert [(a["status"], a["cancel_reason"]) for a in listed] == [
        ("cancelled", "Withdrawn by the candidate."), ("cancelled", "Please apply at the office")]
    assert get(platform, f"/api/v1/me/certificates/{certificate_id}", candidate).json()["status"] == "issued"
    check = post(platform, "/api/v1/certificate-checks", json={
        "holder_name": mine["full_name"], "certificate_number": mine["certificate"]["certificate_number"]})
    assert check.status_code == 200 and check.json()["result"] == "valid"


def test_a_recheck_that_fails_an_issued_certificate_puts_it_on_the_revocation_queue(platform):
    """Issue #19 item 2, through the gateway: a re-check corrects the pass to a fail; the issued certificate stays
    valid until staff decide its revocation case (before its decide_by day), then answers revoked with reason
    result_corrected. Wrong decisions get a 4xx and change nothing."""
    from deploy.journey import run_journey

    mine = run_journey(platform.gateway_url, say=lambda _line: None,
                       staff_password=SECRETS["BOOTSTRAP_STAFF_PASSWORD"])
    candidate, staff = mine["candidate_token"], mine["staff_token"]
    certificate = mine["certificate"]
    result_id = get(platform, "/api/v1/me/results", candidate).json()["results"][0]["result_id"]
    review = post(platform, f"/api/v1/me/results/{result_id}/review", candidate,
                  json={"reason": "Please re-count my drill marks"})
    assert review.status_code == 201, review.text
    # admin recorded the score: an expert who did not closes its re-check (separation of duties)
    closure = f"/api/v1/score-reviews/{review.json()['review_id']}/closure"
    correction = {"resolution": "corrected", "new_score": 41, "note": "drill marks were counted twice"}
    refused = post(platform, closure, staff, json=correction)
    assert (refused.status_code, error_code(refused)) == (403, "same_person_cannot_sign")
    closed = post(platform, closure, mine["expert_tokens"][0], json=correction)
    assert closed.status_code == 200, closed.text

    def open_case():
        cases = get(platform, "/api/v1/revocation-cases?status=open", staff).json()["cases"]
        return next((c for c in cases if c["certificate_id"] == certificate["certificate_id"]), None)

    case = wait_until("the certificate is on the revocation queue", open_case)
    assert case["reason_code"] == "result_corrected" and case["overdue"] is False and case["decide_by"]
    assert get(platform, "/api/v1/revocation-cases", candidate).status_code == 403

    def check():
        return post(platform, "/api/v1/certificate-checks", json={
            "holder_name": mine["full_name"], "certificate_number": certificate["certificate_number"]}).json()

    assert check()["result"] == "valid"  # until staff decide
    decision = f"/api/v1/revocation-cases/{case['case_id']}/decision"
    for body in ({"decision": "maybe", "note": "x"}, {"decision": "revoke"}, {"decision": "revoke", "note": "x" * 201}):
        refused = post(platform, decision, staff, json=body)
        assert refused.status_code == 422 and error_code(refused), refused.text
    unknown = post(platform, "/api/v1/revocation-cases/no-such-case/decision", staff,
                   json={"decision": "revoke", "note": "x"})
    assert unknown.status_code == 404 and error_code(unknown) == "case_not_found"
    assert post(platform, decision, candidate, json={"decision": "keep", "note": "mine"}).status_code == 403
    assert open_case() is not None and check()["result"] == "valid"  # nothing changed
    decided = post(platform, decision, staff, json={"decision": "revoke",
                                                    "note": "The re-check corrected the score to a fail."})
    assert decided.status_code == 200 and decided.json()["status"] == "revoked"
    twice = post(platform, decision, staff, json={"decision": "keep", "note": "changed my mind"})
    assert twice.status_code == 409 and error_code(twice) == "case_decided"
    wait_until("the public check answers revoked", lambda: check()["result"] == "revoked")
    held = get(platform, f"/api/v1/me/certificates/{certificate['certificate_id']}", candidate).json()
    assert (held["status"], held["revocation_code"], held["revocation_reason"]) == (
        "revoked", "result_corrected", "The re-check corrected the score to a fail.")


def test_an_idempotency_key_makes_a_client_retry_safe(platform, journey):
    import uuid

    url = platform.gateway_url + "/api/v1/me/verification-reports"
    auth = {"Authorization": f"Bearer {journey['candidate_token']}"}
    before = len(requests.get(url, headers=auth, timeout=15).json()["reports"])
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    # a report on the exam record: allowed whatever other tests did to the journey's certificate since
    first = requests.post(url, json={"kind": "education_record"}, headers={**auth, **key}, timeout=15)
    retry = requests.post(url, json={"kind": "education_record"}, headers={**auth, **key}, timeout=15)
    assert first.status_code == retry.status_code == 201, first.text
    assert retry.json() == first.json()
    assert len(requests.get(url, headers=auth, timeout=15).json()["reports"]) == before + 1
    reused = requests.post(url, json={"certificate_number": journey["certificate"]["certificate_number"]},
                           headers={**auth, **key}, timeout=15)
    assert reused.status_code == 422 and error_code(reused) == "idempotency_key_reused"
    bad = requests.post(url, json={"kind": "education_record"}, headers={**auth, "Idempotency-Key": "x" * 201},
                        timeout=15)
    assert bad.status_code == 422 and error_code(bad) == "invalid_idempotency_key"
    assert len(requests.get(url, headers=auth, timeout=15).json()["reports"]) == before + 1
