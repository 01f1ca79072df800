"""The standalone report verifier (verifier/, ``credence-verify``): the golden vectors and PDFs get their verdicts,
a changed page or a mixed-up PDF is tampered, the command exits with the documented codes, and the package installs
alone into a fresh virtual environment and works there without the platform."""

from __future__ import annotations

import ast
import copy
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

from credence_common.security import signing
from services.verification.adapters import report_pdf
from services.verification.domain import reports
from tests.golden import make_verification_report_vectors as golden

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "verifier"
sys.path.insert(0, str(VERIFIER / "src"))

import credence_report_verifier as verifier  # noqa: E402
from credence_report_verifier import cli  # noqa: E402

CHECKED_AT = datetime.fromisoformat(golden.CHECKED_AT)
KEYS_FILE = golden.HERE / "keys.json"
ALLOWED_IMPORTS = {"cryptography", "pypdf", "pypdfium2", "zxingcpp", "PIL", "credence_report_verifier"}


def keys() -> dict:
    return verifier.load_keys(KEYS_FILE.read_text(encoding="utf-8"))


def signed_vectors() -> list[dict]:
    return json.loads((golden.HERE / "signed_vectors.json").read_text(encoding="utf-8"))


def test_the_verifier_imports_nothing_of_the_platform():
    for path in (VERIFIER / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED_IMPORTS, f"{path.name} imports {name}"


@pytest.mark.parametrize("vector", signed_vectors(), ids=lambda v: v["name"])
def test_the_verifier_gives_each_signed_vector_its_verdict(vector):
    at = datetime.fromisoformat(vector["checked_at"])
    if "payload" in vector:
        result = verifier.verify_payload(vector["payload"], keys(), at)
    else:
        result = verifier.verify_signed(vector["signed_report"], keys(), at)
    assert result.verdict == vector["expected"], result.message
    assert result.exit_code == {"valid": 0, "tampered": 3, "expired": 4, "unknown_key": 5,
                                "malformed": 6}[vector["expected"]]


@pytest.mark.parametrize("name, expected", [("valid", "valid"), ("expired", "expired"), ("wrong_key", "unknown_key"),
                                            ("flipped_byte", "tampered")])
def test_the_older_json_vectors_get_the_verdict_of_their_kind(name, expected):
    vector = json.loads((golden.HERE / f"{name}.json").read_text(encoding="utf-8"))
    result = verifier.verify_signed(vector["report"], keys(), datetime.fromisoformat(vector["checked_at"]))
    assert result.verdict == expected
    online_answer = {"state": "valid", "signed_report": vector["report"]}  # the online answer's JSON, as saved
    assert verifier.verify_signed(online_answer, keys(), datetime.fromisoformat(vector["checked_at"])).verdict == \
        expected


def test_the_keys_as_published_and_as_one_pem_key_and_what_is_no_key_set():
    assert set(keys()) == {golden.current_key().key_id, golden.previous_key().key_id}
    pem = verifier.load_keys((golden.HERE / "authority_public_key.pem").read_text(encoding="utf-8"))
    assert set(pem) == {golden.current_key().key_id}
    published = json.loads(KEYS_FILE.read_text(encoding="utf-8"))
    liar = copy.deepcopy(published)
    liar["keys"][0]["kid"] = published["keys"][1]["kid"]  # a kid that is not its key's
    for wrong in (liar, {"keys": []}, {"keys": [{"kty": "RSA"}]}, [1, 2]):
        with pytest.raises(verifier.CouldNotCheck):
            verifier.load_keys(json.dumps(wrong))
    with pytest.raises(verifier.CouldNotCheck):
        verifier.load_keys("not a key")


@pytest.mark.parametrize("scan", [False, True])
def test_the_golden_pdfs_valid_and_tampered(scan):
    valid = verifier.verify_file(golden.HERE / "valid.pdf", keys(), CHECKED_AT, scan=scan)
    assert valid.verdict == "valid" and valid.document == golden.DOCUMENT, valid.message
    assert ("the signed QR code on the page: valid" in valid.checks) == scan
    assert "the page shows the signed facts" in valid.checks
    tampered = verifier.verify_file(golden.HERE / "tampered.pdf", keys(), CHECKED_AT, scan=scan)
    assert tampered.verdict == "tampered" and tampered.document is None


def test_the_golden_pdf_expired_and_signed_by_a_key_nobody_publishes():
    later = datetime.fromisoformat("2026-12-24T00:00:00+00:00")
    assert verifier.verify_file(golden.HERE / "valid.pdf", keys(), later).verdict == "expired"
    stranger = verifier.load_keys(signing.public_key_pem(golden.OTHER_KEY))
    assert verifier.verify_file(golden.HERE / "valid.pdf", stranger, CHECKED_AT).verdict == "unknown_key"


def test_a_pdf_whose_page_was_edited_under_an_intact_signature_is_tampered(monkeypatch):
    signed = reports.sign_report(golden.AUTHORITY_KEY, golden.DOCUMENT)
    real_facts = report_pdf.facts

    def edited(document):
        title_zh, title_en, rows = real_facts(document)
        return title_zh, title_en, [(label, "202611000000026" if value == "202611000000018" else value)
                                    for label, value in rows]

    monkeypatch.setattr(report_pdf, "facts", edited)
    result = verifier.verify_pdf(report_pdf.render(signed, golden.KEYS_URL), keys(), CHECKED_AT)
    assert result.verdict == "tampered" and "certificate number" in result.message


def test_a_pdf_put_together_from_two_reports_is_tampered():
    from pypdf import PdfReader, PdfWriter

    first = report_pdf.render(reports.sign_report(golden.AUTHORITY_KEY, golden.DOCUMENT), golden.KEYS_URL)
    other = reports.sign_report(golden.AUTHORITY_KEY, {**golden.DOCUMENT, "report_code": "B" * 32})
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(first)))
    writer.add_metadata({report_pdf.PAYLOAD_METADATA_KEY: reports.compact_payload(other)})
    mixed = io.BytesIO()
    writer.write(mixed)
    result = verifier.verify_pdf(mixed.getvalue(), keys(), CHECKED_AT, scan=False)
    assert result.verdict == "tampered" and "two different" in result.message


def test_a_pdf_whose_link_qr_code_leads_elsewhere_is_tampered(monkeypatch):
    real_qr = report_pdf._qr
    signed = reports.sign_report(golden.AUTHORITY_KEY, golden.DOCUMENT)

    def phishing(pdf, text, *args):
        return real_qr(pdf, "https://verify.example.org.evil.example/r/X" if text.startswith("https://verify.")
                       else text, *args)

    monkeypatch.setattr(report_pdf, "_qr", phishing)
    result = verifier.verify_pdf(report_pdf.render(signed, golden.KEYS_URL), keys(), CHECKED_AT, scan=True)
    assert result.verdict == "tampered" and "evil.example" in result.message


def test_the_link_qr_code_may_carry_the_scan_marker_and_nothing_else():
    from credence_report_verifier.pdf import leads_to_the_report

    url = golden.DOCUMENT["verify_url"]
    assert leads_to_the_report(url, url) and leads_to_the_report(reports.qr_url(url), url)
    for other in (url + "?via=qr&x=1", url + "X?via=qr", url.replace("https://", "http://")):
        assert not leads_to_the_report(other, url)


def test_a_photo_of_the_printed_report_verifies_by_its_qr_code():
    import pypdfium2

    image = pypdfium2.PdfDocument((golden.HERE / "valid.pdf").read_bytes())[0].render(scale=200 / 72).to_pil()
    photo = io.BytesIO()
    image.convert("L").save(photo, format="PNG")
    assert verifier.verify_bytes(photo.getvalue(), keys(), CHECKED_AT).verdict == "valid"


def test_what_is_no_report_is_malformed():
    from reportlab.pdfgen import canvas

    blank = io.BytesIO()
    canvas.Canvas(blank).save()
    for data in (blank.getvalue(), b"%PDF-1.4 garbage", b"not json", json.dumps({"document": 1}).encode(),
                 b"CRV1:A", "\u00e9".encode("latin-1")):
        assert verifier.verify_bytes(data, keys(), CHECKED_AT, scan=False).verdict == "malformed", data[:20]


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    err = io.StringIO()
    from contextlib import redirect_stderr, redirect_stdout

    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exited:
            code = exited.code
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("args, code, first_word", [
    ([str(golden.HERE / "valid.pdf")], 0, "valid:"),
    ([str(golden.HERE / "tampered.pdf")], 3, "tampered:"),
    ([str(golden.HERE / "valid.pdf"), "--at", "2026-12-24T00:00:00Z"], 4, "expired:"),
    (["--payload", next(v["payload"] for v in signed_vectors() if v["name"] == "payload_unknown_key")], 5,
     "unknown_key:"),
    (["--payload", "HC1:NCFOXN%TS3DH"], 6, "malformed:"),
])
def test_the_command_says_the_verdict_and_exits_with_its_code(args, code, first_word):
    exit_code, output = run_cli(*args, "--keys", str(KEYS_FILE), "--at", "2026-11-30T00:00:00Z") \
        if "--at" not in args else run_cli(*args, "--keys", str(KEYS_FILE))
    assert exit_code == code and output.startswith(first_word), output


def test_the_command_prints_what_was_signed_and_json_on_request(tmp_path):
    code, output = run_cli(str(golden.HERE / "valid.pdf"), "--keys", str(KEYS_FILE), "--at", golden.CHECKED_AT)
    assert code == 0 and "certificate number: 202611000000018" in output and "holder name masked: 王*明" in output
    report = tmp_path / "report.json"
    report.write_text(json.dumps(json.loads((golden.HERE / "valid.json").read_text())["report"]), encoding="utf-8")
    code, output = run_cli(str(report), "--keys", str(KEYS_FILE), "--at", golden.CHECKED_AT, "--json")
    assert code == 0 and json.loads(output)["document"] == golden.DOCUMENT


def test_the_command_says_when_it_could_not_check_and_when_it_was_misused(tmp_path):
    assert run_cli(str(golden.HERE / "valid.pdf"), "--keys", str(tmp_path / "missing.json"))[0] == 1
    assert run_cli(str(tmp_path / "missing.pdf"), "--keys", str(KEYS_FILE))[0] == 1
    assert run_cli(str(golden.HERE / "valid.pdf"), "--keys-url", "http://127.0.0.1:9/keys.json")[0] == 1
    assert run_cli(str(golden.HERE / "valid.pdf"))[0] == 2  # no keys
    assert run_cli("--keys", str(KEYS_FILE))[0] == 2  # nothing to check
    assert run_cli(str(golden.HERE / "valid.pdf"), "--keys", str(KEYS_FILE), "--at", "soon")[0] == 2


@pytest.fixture
def keys_server():
    """The key set served over HTTP on the loopback, as the gateway serves it."""
    body = KEYS_FILE.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/.well-known/credence-report-keys.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/credence-report-keys.json"
    server.shutdown()
    server.server_close()


def test_the_command_fetches_the_keys_from_their_url(keys_server):
    code, output = run_cli(str(golden.HERE / "valid.pdf"), "--keys-url", keys_server, "--at", golden.CHECKED_AT)
    assert code == 0, output
    assert run_cli(str(golden.HERE / "valid.pdf"), "--keys-url", "file:///etc/passwd")[0] == 1


def test_the_verifier_installs_alone_and_checks_the_golden_reports(tmp_path):
    """pip install ./verifier into a fresh venv, away from the repository: the command works there, and the
    platform is not importable there."""
    source = tmp_path / "verifier"
    shutil.copytree(VERIFIER, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, command = venv / "bin" / "python", venv / "bin" / "credence-verify"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                str(source)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    work = tmp_path / "work"
    work.mkdir()
    for name in ("valid.pdf", "tampered.pdf", "keys.json"):
        shutil.copy(golden.HERE / name, work / name)
    (work / "report.json").write_text(json.dumps(json.loads((golden.HERE / "valid.json").read_text())["report"]),
                                      encoding="utf-8")
    payload = next(v["payload"] for v in signed_vectors() if v["name"] == "payload_tampered")

    def verify(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(command), *args, "--keys", "keys.json", "--at", golden.CHECKED_AT], cwd=work,
                              env=env, capture_output=True, text=True, timeout=120)

    for args, code in ((["valid.pdf"], 0), (["tampered.pdf"], 3), (["report.json"], 0), (["--payload", payload], 3)):
        outcome = verify(*args)
        assert outcome.returncode == code, (args, outcome.stdout, outcome.stderr)
    isolated = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in ('credence_common', "
                               "'services', 'gateway', 'pypdfium2') if u.find_spec(m)])"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=60)
    assert isolated.stdout.strip() == "[]", isolated.stdout + isolated.stderr

    # the scan extra: wheels from the index, no system library; then the QR codes are read from the page too
    scan = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           f"{source}[scan]"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    outcome = verify("valid.pdf")
    assert outcome.returncode == 0 and "the signed QR code on the page: valid" in outcome.stdout, outcome
