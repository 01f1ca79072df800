"""``credence-verify``: the verdict on a report, and the exit code that says it.

    credence-verify report.pdf --keys-url https://verify.example.org/.well-known/credence-report-keys.json
    credence-verify report.json --keys credence-report-keys.json
    credence-verify --payload 'CRV1:...' --keys credence-report-keys.json

Exit codes: 0 valid, 3 tampered, 4 expired, 5 unknown_key, 6 malformed; 1 the check could not be made (a file
unreadable, the keys unreachable or unreadable); 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from credence_report_verifier import __version__, core, verify_bytes
from credence_report_verifier.pdf import scanning_available


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credence-verify",
        description="Check a Credence verification report offline: is it the authority's, unchanged and not "
                    "expired? Exit code 0 valid, 3 tampered, 4 expired, 5 unknown_key, 6 malformed, 1 could not "
                    "check.")
    parser.add_argument("report", nargs="?", help="the report: its PDF, its JSON, a photo or scan of it (PNG, "
                                                  "JPEG; needs the scan extra), or a file holding its CRV1 payload")
    parser.add_argument("--payload", help="the CRV1:... text read from the report's second QR code")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--keys", metavar="FILE", help="the authority's key set, saved from "
                                                     "/.well-known/credence-report-keys.json (or one PEM public key)")
    keys.add_argument("--keys-url", metavar="URL", help="where the authority publishes its key set, fetched now")
    parser.add_argument("--at", metavar="TIME", help="judge as at this ISO 8601 time instead of now "
                                                     "(e.g. 2026-11-30T00:00:00Z)")
    parser.add_argument("--no-scan", action="store_true", help="do not read the QR codes of a PDF's page, only "
                                                               "its metadata, attachment and text")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.report is None) == (args.payload is None):
        parser.error("give a report file or --payload, one of the two")
    try:
        now = core.parse_time(args.at) if args.at else datetime.now(timezone.utc)
    except ValueError as why:
        parser.error(f"--at: {why}")
    try:
        if args.keys:
            with open(args.keys, encoding="utf-8") as file:
                keys = core.load_keys(file.read())
        else:
            keys = core.fetch_keys(args.keys_url)
        if args.payload is not None:
            result = core.verify_payload(args.payload, keys, now)
        else:
            with open(args.report, "rb") as file:
                data = file.read()
            result = verify_bytes(data, keys, now, scan=False if args.no_scan else None)
    except core.CouldNotCheck as why:
        print(f"could not check: {why}", file=sys.stderr)
        return core.COULD_NOT_CHECK
    except OSError as why:
        print(f"could not check: {why}", file=sys.stderr)
        return core.COULD_NOT_CHECK
    except ImportError:
        print("could not check: reading QR codes from an image needs the scan extra: "
              "pip install 'credence-report-verifier[scan]'", file=sys.stderr)
        return core.COULD_NOT_CHECK
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"{result.verdict}: {result.message}")
        if result.document:
            print()
            print("What the authority signed:")
            for line in _facts(result.document):
                print(f"  {line}")
        if result.checks:
            print()
            print("What was looked at:")
        for check in result.checks:
            print(f"  {check}")
        if args.report and args.report.lower().endswith(".pdf") and not args.no_scan and not scanning_available():
            print("  (the page's QR codes were not read: pip install 'credence-report-verifier[scan]')")
    return result.exit_code


def _facts(document: dict) -> list[str]:
    subject = document.get("education_record") or document.get("certificate") or {}
    lines = [f"report code: {document.get('report_code')}", f"kind: {document.get('kind')}"]
    for name, value in subject.items():
        if name != "programs":
            lines.append(f"{name.replace('_', ' ')}: {value}")
    for program in subject.get("programs", []) if isinstance(subject.get("programs"), list) else []:
        lines.append(f"program {program.get('program_code')}: {program.get('program_name')}")
        for course in program.get("courses", []):
            lines.append(f"  course {course.get('course_code')} {course.get('course_name')}: {course.get('state')} "
                         f"{course.get('score') if course.get('score') is not None else ''}".rstrip())
    lines += [f"requested at: {document.get('requested_at')}", f"expires at: {document.get('expires_at')}",
              f"online page: {document.get('verify_url')}"]
    return lines
