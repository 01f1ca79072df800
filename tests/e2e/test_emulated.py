"""``make run-emulated`` (deploy/emulated.py): the platform started by the command a developer types, with the real
provider adapters talking to local emulators. A candidate reads the code the emulated phone prints, registers,
passes the FaceID emulator's liveness page and gets a ticket number; the degree registry is asked over its signed
contract; WeChat Pay's emulator is the payment provider. Real RabbitMQ, SQLite, real processes."""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from deploy.journey import random_mobile, random_resident_id
from deploy.platform import REPO_ROOT, free_port
from deploy.processes import PROCESSES
from tests.e2e.conftest import _management


class Console:
    """The developer's terminal: every line the command prints, to wait on."""

    def __init__(self, process: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process):
        for line in process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        for line in self.seen:
            if match := re.search(pattern, line):
                return match
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; the console said:\n" + "\n".join(self.seen[-40:]))


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("emulated")
    vhost = f"credence_emulated_{uuid.uuid4().hex[:10]}"
    _management("PUT", f"/api/vhosts/{vhost}")
    _management("PUT", f"/api/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_URI")}
    env.update({"AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}", "EMULATED_WORKDIR": str(workdir),
                "EMULATED_PORT_BASE": "0", "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
                "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})
    env.pop("CREDENCE_ENV", None)  # the command says development itself, as make run does
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    process = subprocess.Popen([sys.executable, "-m", "deploy.emulated"], cwd=REPO_ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    console = Console(process)
    try:
        console.wait_for(r"Credence is running", timeout=180)
        yield "http://" + env["GATEWAY_ADDRESS"], console
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        _management("DELETE", f"/api/vhosts/{vhost}")


def test_a_candidate_registers_confirms_identity_and_checks_a_degree_against_the_emulators(emulated):
    url, console = emulated
    wechatpay = console.wait_for(r"WeChat Pay: +(http://127\.0\.0\.1:\d+) ").group(1)
    faceid = console.wait_for(r"FaceID: +(http://127\.0\.0\.1:\d+) ").group(1)
    rng = random.Random()
    mobile, resident_id = random_mobile(rng), random_resident_id(rng)
    email, password = f"emu.{uuid.uuid4().hex[:10]}@example.com", f"Emu-{uuid.uuid4().hex[:12]}"
    caller = requests.Session()
    assert caller.post(url + "/api/v1/mobile-codes", json={"mobile": mobile, "purpose": "registration"},
                       timeout=15).status_code == 202
    masked = re.escape(mobile[:3] + "****" + mobile[-4:])
    code = console.wait_for(rf"\[phone {masked}\] Credence: registration code (\d+) \(valid 5 minutes\)").group(1)
    registered = caller.post(url + "/api/v1/candidates", timeout=15, json={
        "full_name": "李静", "resident_id_number": resident_id, "mobile": mobile, "mobile_code": code,
        "email": email, "password": password, "exam_region": "11", "degree_upgrade": True})
    assert registered.status_code == 201, registered.text
    token = caller.post(url + "/api/v1/auth/login", json={"login": email, "password": password},
                        timeout=15).json()["access_token"]
    caller.headers["Authorization"] = f"Bearer {token}"
    session = caller.post(url + "/api/v1/me/identity-confirmation/sessions", timeout=30)
    assert session.status_code == 201, session.text
    page = session.json()["url"]
    assert page.startswith(faceid + "/")
    assert "liveness" in requests.get(page, timeout=10).text
    back = requests.post(page, data={"outcome": "pass"}, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"].startswith(url + "/candidate/identity-confirmation?")
    biz_token = back.headers["Location"].split("token=", 1)[1]
    confirmed = caller.post(url + "/api/v1/me/identity-confirmation/sessions/confirmation", timeout=30,
                            json={"biz_token": biz_token})
    assert confirmed.status_code == 200 and confirmed.json()["ticket_number"], confirmed.text
    # the registry emulator knows no degree: asked over the signed contract, it answers not found
    checked = caller.post(url + "/api/v1/me/prior-education", timeout=30,
                          json={"degree_certificate_number": "1" * 18})
    assert checked.status_code == 200, checked.text
    assert checked.json()["prior_education_status"] == "proof_required"
    # WeChat Pay's emulator: its payer route answers (an order it never saw is 404, as the banner's curl would)
    unknown = requests.post(f"{wechatpay}/emulator/trades/P00000000000000000/payment", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["code"] == "ORDER_NOT_EXIST"
