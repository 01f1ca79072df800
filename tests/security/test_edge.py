"""#17 item 6, the gateway's edge: what a caller probing the public port meets, and what its logs keep.

Each caller here sends from its own 127.0.6.x address, so that its limits touch no other test's."""

from __future__ import annotations

import random
import socket
import uuid

import requests

from credence_common.contracts.certificate_numbers import format_certificate_number
from deploy.journey import wait_until
from deploy.processes import BY_NAME
from tests.security.conftest import client_from, error_code

# also against the nameko gateway (GATEWAY_SERVER=nameko), on SQLite (tests/e2e/conftest.py)
ALSO_ON_THE_NAMEKO_GATEWAY = True
TIMEOUT = 15


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def wait_for_log_line(path, *needles: str, timeout: float = 15.0) -> str:
    """The log's text once a line holds every needle (a positive signal, not a sleep)."""
    def text_with_line():
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if any(all(needle in line for needle in needles) for line in text.splitlines()) else None

    return wait_until(f"a line with {needles} in {path.name}", text_with_line, timeout=timeout, interval=0.1)


def test_reading_the_gateways_metrics_on_the_public_port(secure_platform, journey):
    public = requests.get(secure_platform.gateway_url + "/metrics", timeout=TIMEOUT)
    assert public.status_code == 404 and error_code(public) == "route_not_found"
    assert "credence_entrypoint_calls_total" not in public.text
    port = secure_platform.metrics_port(BY_NAME["gateway"])
    assert port and f":{port}" != secure_platform.gateway_url.rsplit("/", 1)[-1]
    internal = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT)
    assert internal.status_code == 200
    assert 'kind="http",outcome="ok",service="gateway"' in internal.text


def raw_exchange(url: str, data: bytes) -> bytes:
    """Sends bytes on a connection of its own and reads the answer until the server closes it."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_finding_report_codes_and_order_numbers_in_the_logs(secure_platform, journey):
    candidate = bearer(journey["candidate_token"])
    made = requests.post(secure_platform.gateway_url + "/api/v1/me/verification-reports", headers=candidate,
                         json={"certificate_number": journey["certificate"]["certificate_number"]}, timeout=TIMEOUT)
    assert made.status_code == 201, made.text
    code = made.json()["report_code"]
    order_number = journey["order"]["order_number"]
    # One connection for every request: eventlet finishes a request, its log line included, before it reads
    # the next one on the same connection, so the last request's access line proves the others were logged.
    caller = client_from("127.0.6.1")
    page = caller.get(f"{secure_platform.gateway_url}/r/{code}", timeout=TIMEOUT)
    assert page.status_code == 200 and code in page.text
    answer = caller.get(f"{secure_platform.gateway_url}/api/v1/verification-reports/{code}", timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert caller.get(f"{secure_platform.gateway_url}/r/{code}/", timeout=TIMEOUT).status_code == 404
    order = caller.get(f"{secure_platform.gateway_url}/api/v1/payment-orders/{order_number}?order_number="
                       f"{order_number}", headers=candidate, timeout=TIMEOUT)
    assert order.status_code == 200, order.text
    # malformed request lines holding the code: refused before any route, and their line is not logged either
    for request_line in (f"GET /r/{code} HTTP/1.1 junk", f"/r/{code}", f"GET /r/{code} HTTP/9.9"):
        reply = raw_exchange(secure_platform.gateway_url, request_line.encode() + b"\r\n\r\n")
        assert b'"malformed_request"' in reply and code.encode() not in reply, reply
    marker = uuid.uuid4().hex
    assert caller.get(secure_platform.gateway_url + "/openapi.json", headers={"X-Request-Id": marker},
                      timeout=TIMEOUT).status_code == 200
    gateway_log = wait_for_log_line(secure_platform.log_dir / "gateway.log", marker, "GET /openapi.json 200")
    # the access log names the routes by their rules
    assert "GET /r/<report_code> 200" in gateway_log
    assert "GET /api/v1/verification-reports/<report_code> 200" in gateway_log
    assert order_number not in gateway_log  # the journey paid it at /sandbox-provider/orders/<order_number>
    for log_file in secure_platform.log_dir.iterdir():
        assert code not in log_file.read_text(errors="replace"), f"the report code is in {log_file.name}"


def test_probing_unknown_paths_and_wrong_methods_gets_json_not_html(secure_platform):
    caller = client_from("127.0.6.2")
    for method, path in (("GET", "/nonexistent"), ("GET", "/"), ("POST", "/wp-login.php"),
                         ("PROPFIND", "/r/whatever/else"), ("GET", "/api/v1/nowhere")):
        response = caller.request(method, secure_platform.gateway_url + path, timeout=TIMEOUT)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.headers["Content-Type"].startswith("application/json")
        assert error_code(response) == "route_not_found"
    for method, path, allowed in (("DELETE", "/verify", "GET, HEAD, POST"), ("PUT", "/r/SOMECODE", "GET, HEAD"),
                                  ("GET", "/api/v1/certificate-checks", "POST")):
        response = caller.request(method, secure_platform.gateway_url + path, timeout=TIMEOUT)
        assert response.status_code == 405, (method, path, response.status_code)
        assert response.headers["Content-Type"].startswith("application/json")
        assert error_code(response) == "method_not_allowed"
        assert response.headers["Allow"] == allowed


def test_hammering_is_refused_with_a_retry_after(secure_platform, journey):
    url = secure_platform.gateway_url
    # the gateway's own limiter, on the API (a malformed body is refused after the limiter, before any RPC)
    api = client_from("127.0.6.3")
    refusal = next(r for r in (api.post(url + "/api/v1/certificate-checks", data=b"{", timeout=TIMEOUT)
                               for _ in range(1000)) if r.status_code != 400)
    assert refusal.status_code == 429 and error_code(refusal) == "rate_limited"
    assert int(refusal.headers["Retry-After"]) >= 1
    # ... and on the report page, in HTML
    page = client_from("127.0.6.4")
    refused_page = next(r for r in (page.get(url + "/r/" + "A" * 32, timeout=TIMEOUT) for _ in range(1000))
                        if r.status_code != 404)
    assert refused_page.status_code == 429 and refused_page.headers["Content-Type"].startswith("text/html")
    assert int(refused_page.headers["Retry-After"]) >= 1
    # a service's refusal: the per-number check limit (verification), 20 a minute
    number = format_certificate_number(2026, "11", random.randrange(10**7, 10**8))
    checker = client_from("127.0.6.5")
    checks = [checker.post(url + "/api/v1/certificate-checks", json={"holder_name": "王小明",
                                                                     "certificate_number": number}, timeout=TIMEOUT)
              for _ in range(21)]
    assert [c.status_code for c in checks] == [404] * 20 + [429]
    assert error_code(checks[-1]) == "rate_limited" and checks[-1].headers["Retry-After"] == "60"
    # a service's refusal naming its own wait: a login locked after failures (identity)
    guesser = client_from("127.0.6.6")
    login = {"login": f"nobody.{uuid.uuid4().hex[:8]}@example.com", "password": "wrong password"}
    locked = next(r for r in (guesser.post(url + "/api/v1/auth/login", json=login, timeout=TIMEOUT)
                              for _ in range(30)) if r.status_code == 429)
    assert error_code(locked) == "too_many_attempts"
    named = {d["field"]: d["message"] for d in locked.json()["error"]["details"]}["retry_after_seconds"]
    assert locked.headers["Retry-After"] == named


def test_report_page_leaking_its_code_in_a_referer_or_being_framed(secure_platform, journey):
    made = requests.post(secure_platform.gateway_url + "/api/v1/me/verification-reports",
                         headers=bearer(journey["candidate_token"]),
                         json={"certificate_number": journey["certificate"]["certificate_number"]}, timeout=TIMEOUT)
    assert made.status_code == 201, made.text
    caller = client_from("127.0.6.7")
    for path in (f"/r/{made.json()['report_code']}", "/r/" + "B" * 32, "/verify"):
        response = caller.get(secure_platform.gateway_url + path, timeout=TIMEOUT)
        assert response.headers["Content-Type"].startswith("text/html"), path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        csp = [part.strip() for part in response.headers["Content-Security-Policy"].split(";")]
        assert "frame-ancestors 'none'" in csp, path
    api = caller.get(f"{secure_platform.gateway_url}/api/v1/verification-reports/{made.json()['report_code']}",
                     timeout=TIMEOUT)
    assert api.status_code == 200 and api.headers["Referrer-Policy"] == "no-referrer"
