"""The routes that forward to verification: verification reports, share codes, who opened what, and the public
certificate check. Each route forwards (``Rpc``, gateway/routing.py) but the PDF, decoded above the table, and the
public check, batched (gateway/api.py assembles every service's table)."""

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
from gateway.routing import (
    ACTOR,
    ANY_SIGNED_IN,
    BODY,
    CLIENT,
    NOT_REPLAYED,
    Call,
    Param,
    Route,
    Rpc,
    dump,
)


def report_pdf(call: Call):
    import base64

    return base64.b64decode(call.rpc.call("verification", "report_pdf", call.actor, call.params["report_code"]))


# Public keys change only when the authority rotates them, and a new key is published from its first report on:
# an hour's cache costs a verifier at most an hour's "unknown_key" for a report signed in the first hour of a new
# key (credence-verify --keys-url fetches afresh). Any site may read them (a verifier in a browser).
KEYS_CACHE_HEADERS = (("Cache-Control", "public, max-age=3600"), ("Access-Control-Allow-Origin", "*"))


def public_certificate_check(call: Call):
    # batched: rides with the other checks of the moment in one public_checks round trip (ServiceCalls.public_check);
    # the asgi binding awaits the same forward on its loop (gateway/asgi.py NATIVE_HANDLERS)
    return call.rpc.public_check(dump(call.body), call.client_address)


ROUTES: tuple[Route, ...] = (
    Route(name="request_report", method="POST", path="/api/v1/me/verification-reports",
          summary="Ask for a signed verification report of one of your certificates or of your exam record (valid 30 "
                  "days, with a QR code)",
          roles=("candidate",), request_model=RequestReport, response_model=ReportView, success_status=201,
          tag="verification",
          links=(("report_answer", "report_code", "/report_code"), ("report_pdf", "report_code", "/report_code"),
                 ("create_share_code", "report_code", "/report_code"),
                 ("extend_report", "report_code", "/report_code"), ("close_report", "report_code", "/report_code")),
          handler=Rpc("verification", "request_report", ACTOR, BODY)),
    Route(name="my_reports", method="GET", path="/api/v1/me/verification-reports",
          summary="Your verification reports, newest first",
          roles=("candidate",), response_model=ReportList, tag="verification",
          links=(("report_answer", "report_code", "/reports/0/report_code"),
                 ("report_pdf", "report_code", "/reports/0/report_code"),
                 ("create_share_code", "report_code", "/reports/0/report_code"),
                 ("extend_report", "report_code", "/reports/0/report_code"),
                 ("close_report", "report_code", "/reports/0/report_code")),
          handler=Rpc("verification", "my_reports", ACTOR)),
    Route(name="close_report", method="POST", path="/api/v1/me/verification-reports/<report_code>/closure",
          summary="Close a report before it expires",
          roles=("candidate",), response_model=ReportView, tag="verification",
          handler=Rpc("verification", "close_report", ACTOR, Param("report_code"))),
    Route(name="extend_report", method="POST", path="/api/v1/me/verification-reports/<report_code>/extension",
          summary="Keep a report open for 30 more days from today",
          roles=("candidate",), response_model=ReportView, tag="verification",
          handler=Rpc("verification", "extend_report", ACTOR, Param("report_code"))),
    Route(name="report_pdf", method="GET", path="/api/v1/me/verification-reports/<report_code>/report.pdf",
          summary="The report as PDF: an official document with two QR codes, its online page and the whole signed "
                  "report for offline checks",
          roles=("candidate",), content_type="application/pdf", tag="verification",
          handler=report_pdf),
    # the opening is recorded for the holder: the code typed (the QR code leads to the page, /r/<code>?via=qr)
    Route(name="report_answer", method="GET", path="/api/v1/verification-reports/<report_code>",
          summary="Today's answer for a report code (what its QR code opens), with the signed document",
          roles=("public",) + ANY_SIGNED_IN, response_model=ReportAnswer, rate_limited=True, tag="verification",
          handler=Rpc("verification", "report_answer", Param("report_code"), CLIENT, "report_code")),
    Route(name="report_public_key", method="GET", path="/api/v1/verification-reports/public-key",
          summary="The Ed25519 public key that verifies downloaded reports offline",
          roles=("public",) + ANY_SIGNED_IN, response_model=ReportPublicKey, tag="verification",
          handler=Rpc("verification", "report_public_key")),
    Route(name="report_keys", method="GET", path="/.well-known/credence-report-keys.json",
          summary="Every key that verifies reports today, as a JWK Set: the current key and previous ones until they "
                  "retire (key id, Ed25519 public key, not_before, retire_after, status)",
          roles=("public",) + ANY_SIGNED_IN, response_model=ReportKeySet, rate_limited=True,
          response_headers=KEYS_CACHE_HEADERS, tag="verification",
          handler=Rpc("verification", "report_keys")),
    Route(name="check_report", method="POST", path="/api/v1/verification-reports/signature-checks",
          summary="What a report's signature says on its own (valid, tampered, expired, unknown_key): send the CRV1 "
                  "payload of its second QR code or its signed JSON",
          roles=("public",) + ANY_SIGNED_IN, request_model=ReportCheck, response_model=ReportCheckResult,
          rate_limited=True, replayable=False, tag="verification",
          handler=Rpc("verification", "check_report", BODY)),
    Route(name="create_share_code", method="POST", path="/api/v1/me/verification-reports/<report_code>/share-codes",
          summary="A one-time code that opens the full report for an employer, for a limited time (shown once)",
          roles=("candidate",), request_model=CreateShareCode, response_model=ShareCodeCreated, success_status=201,
          replayable=NOT_REPLAYED, tag="verification",
          links=(("revoke_share_code", "share_id", "/share_id"),),
          handler=Rpc("verification", "create_share_code", ACTOR, Param("report_code"), BODY)),
    Route(name="my_share_codes", method="GET", path="/api/v1/me/share-codes",
          summary="Your share codes and whether each is still open",
          roles=("candidate",), response_model=ShareCodeList, tag="verification",
          links=(("revoke_share_code", "share_id", "/share_codes/0/share_id"),),
          handler=Rpc("verification", "share_codes", ACTOR)),
    Route(name="revoke_share_code", method="POST", path="/api/v1/me/share-codes/<share_id>/revocation",
          summary="Withdraw a share code before it is used",
          roles=("candidate",), response_model=ShareCodeList, tag="verification",
          handler=Rpc("verification", "revoke_share_code", ACTOR, Param("share_id"))),
    Route(name="my_accesses", method="GET", path="/api/v1/me/certificate-accesses",
          summary="Who looked, newest first: every opening of your reports (by code, QR code or share code) and every "
                  "public check of your certificates, with time, channel, masked address and the organisation and "
                  "purpose the verifier stated",
          roles=("candidate",), response_model=AccessList, tag="verification",
          handler=Rpc("verification", "my_accesses", ACTOR)),
    Route(name="my_accesses_csv", method="GET", path="/api/v1/me/certificate-accesses.csv",
          summary="The same log to download, as CSV (UTF-8)",
          roles=("candidate",), content_type="text/csv; charset=utf-8", download_name="certificate-accesses.csv",
          tag="verification",
          handler=Rpc("verification", "my_accesses_csv", ACTOR)),
    Route(name="open_shared_report", method="POST", path="/api/v1/shared-reports",
          summary="A verifier opens a full report with the holder's share code, stating who they are and why (once)",
          roles=("public",) + ANY_SIGNED_IN, request_model=OpenSharedReport, response_model=FullReport,
          rate_limited=True, tag="verification",
          handler=Rpc("verification", "open_shared_report", BODY, CLIENT)),
    Route(name="public_certificate_check", method="POST", path="/api/v1/certificate-checks",
          summary="Check a certificate by holder name and certificate number; optionally say who is checking and why "
                  "(the holder sees it)",
          roles=("public",) + ANY_SIGNED_IN, request_model=PublicCheck, response_model=PublicCheckResult,
          rate_limited=True, replayable=False, tag="verification",
          handler=public_certificate_check),
)
