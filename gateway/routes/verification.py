"""The routes that forward to verification: verification reports, share codes, who opened what, and the public
certificate check. Each handler only forwards (gateway/api.py assembles every service's table)."""

from __future__ import annotations

from credence_common.contracts.verification import (
    AccessList,
    CreateShareCode,
    FullReport,
    OpenSharedReport,
    PublicCheck,
    PublicCheckResult,
    ReportAnswer,
    ReportCheck,
    ReportCheckResult,
    ReportKeySet,
    ReportList,
    ReportPublicKey,
    ReportView,
    RequestReport,
    ShareCodeCreated,
    ShareCodeList,
)
from gateway.routing import ANY_SIGNED_IN, NOT_REPLAYED, Call, Route, dump


def request_report(call: Call):
    return call.rpc.call("verification", "request_report", call.actor, dump(call.body))


def my_reports(call: Call):
    return call.rpc.call("verification", "my_reports", call.actor)


def close_report(call: Call):
    return call.rpc.call("verification", "close_report", call.actor, call.params["report_code"])


def extend_report(call: Call):
    return call.rpc.call("verification", "extend_report", call.actor, call.params["report_code"])


def report_pdf(call: Call):
    import base64

    return base64.b64decode(call.rpc.call("verification", "report_pdf", call.actor, call.params["report_code"]))


def report_answer(call: Call):
    # the opening is recorded for the holder: the code typed (the QR code leads to the page, /r/<code>?via=qr)
    return call.rpc.call("verification", "report_answer", call.params["report_code"], call.client_address,
                         "report_code")


def report_public_key(call: Call):
    return call.rpc.call("verification", "report_public_key")


def report_keys(call: Call):
    return call.rpc.call("verification", "report_keys")


def check_report(call: Call):
    return call.rpc.call("verification", "check_report", dump(call.body))


# Public keys change only when the authority rotates them, and a new key is published from its first report on:
# an hour's cache costs a verifier at most an hour's "unknown_key" for a report signed in the first hour of a new
# key (credence-verify --keys-url fetches afresh). Any site may read them (a verifier in a browser).
KEYS_CACHE_HEADERS = (("Cache-Control", "public, max-age=3600"), ("Access-Control-Allow-Origin", "*"))


def create_share_code(call: Call):
    return call.rpc.call("verification", "create_share_code", call.actor, call.params["report_code"],
                         dump(call.body))


def my_share_codes(call: Call):
    return call.rpc.call("verification", "share_codes", call.actor)


def revoke_share_code(call: Call):
    return call.rpc.call("verification", "revoke_share_code", call.actor, call.params["share_id"])


def open_shared_report(call: Call):
    return call.rpc.call("verification", "open_shared_report", dump(call.body), call.client_address)


def my_accesses(call: Call):
    return call.rpc.call("verification", "my_accesses", call.actor)


def my_accesses_csv(call: Call):
    return call.rpc.call("verification", "my_accesses_csv", call.actor)


def public_certificate_check(call: Call):
    return call.rpc.public_check(dump(call.body), call.client_address)


ROUTES: tuple[Route, ...] = (
    Route("request_report", "POST", "/api/v1/me/verification-reports",
          "Ask for a signed verification report of one of your certificates or of your exam record (valid 30 days, "
          "with a QR code)",
          ("candidate",), request_report, RequestReport, ReportView, 201, tag="verification"),
    Route("my_reports", "GET", "/api/v1/me/verification-reports", "Your verification reports, newest first",
          ("candidate",), my_reports, None, ReportList, tag="verification"),
    Route("close_report", "POST", "/api/v1/me/verification-reports/<report_code>/closure",
          "Close a report before it expires", ("candidate",), close_report, None, ReportView, tag="verification"),
    Route("extend_report", "POST", "/api/v1/me/verification-reports/<report_code>/extension",
          "Keep a report open for 30 more days from today", ("candidate",), extend_report, None, ReportView,
          tag="verification"),
    Route("report_pdf", "GET", "/api/v1/me/verification-reports/<report_code>/report.pdf",
          "The report as PDF: an official document with two QR codes, its online page and the whole signed "
          "report for offline checks", ("candidate",), report_pdf, None, None,
          content_type="application/pdf", tag="verification"),
    Route("report_answer", "GET", "/api/v1/verification-reports/<report_code>",
          "Today's answer for a report code (what its QR code opens), with the signed document",
          ("public",) + ANY_SIGNED_IN, report_answer, None, ReportAnswer, rate_limited=True, tag="verification"),
    Route("report_public_key", "GET", "/api/v1/verification-reports/public-key",
          "The Ed25519 public key that verifies downloaded reports offline", ("public",) + ANY_SIGNED_IN,
          report_public_key, None, ReportPublicKey, tag="verification"),
    Route("report_keys", "GET", "/.well-known/credence-report-keys.json",
          "Every key that verifies reports today, as a JWK Set: the current key and previous ones until they "
          "retire (key id, Ed25519 public key, not_before, retire_after, status)", ("public",) + ANY_SIGNED_IN,
          report_keys, None, ReportKeySet, rate_limited=True, tag="verification",
          response_headers=KEYS_CACHE_HEADERS),
    Route("check_report", "POST", "/api/v1/verification-reports/signature-checks",
          "What a report's signature says on its own (valid, tampered, expired, unknown_key): send the CRV1 "
          "payload of its second QR code or its signed JSON", ("public",) + ANY_SIGNED_IN, check_report,
          ReportCheck, ReportCheckResult, rate_limited=True, tag="verification", replayable=False),
    Route("create_share_code", "POST", "/api/v1/me/verification-reports/<report_code>/share-codes",
          "A one-time code that opens the full report for an employer, for a limited time (shown once)",
          ("candidate",), create_share_code, CreateShareCode, ShareCodeCreated, 201, tag="verification",
          replayable=NOT_REPLAYED),
    Route("my_share_codes", "GET", "/api/v1/me/share-codes", "Your share codes and whether each is still open",
          ("candidate",), my_share_codes, None, ShareCodeList, tag="verification"),
    Route("revoke_share_code", "POST", "/api/v1/me/share-codes/<share_id>/revocation",
          "Withdraw a share code before it is used", ("candidate",), revoke_share_code, None, ShareCodeList,
          tag="verification"),
    Route("my_accesses", "GET", "/api/v1/me/certificate-accesses",
          "Who looked, newest first: every opening of your reports (by code, QR code or share code) and every "
          "public check of your certificates, with time, channel, masked address and the organisation and "
          "purpose the verifier stated", ("candidate",), my_accesses, None, AccessList, tag="verification"),
    Route("my_accesses_csv", "GET", "/api/v1/me/certificate-accesses.csv",
          "The same log to download, as CSV (UTF-8)", ("candidate",), my_accesses_csv, None, None,
          content_type="text/csv; charset=utf-8", download_name="certificate-accesses.csv", tag="verification"),
    Route("open_shared_report", "POST", "/api/v1/shared-reports",
          "A verifier opens a full report with the holder's share code, stating who they are and why (once)",
          ("public",) + ANY_SIGNED_IN, open_shared_report, OpenSharedReport, FullReport, rate_limited=True,
          tag="verification"),
    Route("public_certificate_check", "POST", "/api/v1/certificate-checks",
          "Check a certificate by holder name and certificate number; optionally say who is checking and why "
          "(the holder sees it)", ("public",) + ANY_SIGNED_IN,
          public_certificate_check, PublicCheck, PublicCheckResult, rate_limited=True, tag="verification",
          replayable=False),
)
