"""The public pages in a real browser: Debian's Chromium, headless, once with JavaScript switched off (the
pages must work without it) and once as a 390-pixel-wide phone. Screenshots are kept in var/screenshots/ as
test artefacts.
`make test` installs chromium and chromium-driver when they are missing. The browser runs in its own process
(tests/e2e/browser_steps.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import requests

from deploy.platform import REPO_ROOT

SCREENSHOTS = REPO_ROOT / "var" / "screenshots"


def browse(*args: str) -> dict:
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLET")}
    try:
        result = subprocess.run([sys.executable, "-m", "tests.e2e.browser_steps", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=40)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"browser timed out: {e.stderr}") from None
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def screenshot(name: str, platform) -> str:
    return str(SCREENSHOTS / f"{name}-{platform.gateway_url.rsplit(':', 1)[1]}.png")


def my_accesses(platform, journey) -> list[dict]:
    answer = requests.get(platform.gateway_url + "/api/v1/me/certificate-accesses", timeout=15,
                          headers={"Authorization": f"Bearer {journey['candidate_token']}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["accesses"]


def test_a_person_checks_a_certificate_without_javascript_and_on_a_phone(platform, journey):
    number = journey["certificate"]["certificate_number"]
    for mode in ("nojs", "phone"):
        shot = screenshot(f"verify-valid-{mode}", platform)
        # who is checking and why, in the form's optional fields (with characters a page must escape)
        stated = (f"某某科技 <HR> {mode}", f"入职核查 & \"背景\" {mode}")
        page = browse("verify", mode, platform.gateway_url, journey["full_name"], number, shot, *stated)
        assert "证书查询" in page["title"] and "Certificate check" in page["title"]
        assert page["data_result"] == "valid" and "有效 Valid" in page["text"] and number in page["text"]
        assert journey["full_name"] not in page["text"]
        assert journey["resident_id_number"] not in page["page_source"]
        assert page["button_width"] > 40
        assert os.path.getsize(shot) > 5000  # a rendered page, not an empty one
        # the holder sees who checked and why, as typed, with the masked address
        assert [(a["organisation"], a["purpose"], a["address_masked"]) for a in my_accesses(platform, journey)
                if a["channel"] == "public_check" and a["organisation"] == stated[0]] == [
            (stated[0], stated[1], "127.0.0.0/24")]
    assert page["html_width"] <= 390 and page["main_width"] <= page["html_width"]  # the phone: no sideways scroll

    wrong = browse("verify", "nojs", platform.gateway_url, "李四", number, screenshot("verify-no-match", platform))
    assert wrong["data_result"] == "not_valid" and "未通过 Not verified" in wrong["text"]


def test_a_reports_qr_code_opens_its_page_on_a_phone(platform, journey):
    made = requests.post(platform.gateway_url + "/api/v1/me/verification-reports", timeout=15,
                         headers={"Authorization": f"Bearer {journey['candidate_token']}"},
                         json={"certificate_number": journey["certificate"]["certificate_number"]})
    assert made.status_code == 201, made.text
    page = browse("open", "phone", made.json()["qr_url"], screenshot("report-page", platform))
    assert page["data_result"] == "valid" and "有效 Valid" in page["text"]
    assert "Verification report" in page["title"] and page["html_width"] <= 390
    # what the QR code opens is recorded as a scan, for the holder to see
    assert [a["channel"] for a in my_accesses(platform, journey)
            if a["report_code"] == made.json()["report_id"]] == ["report_qr"]
