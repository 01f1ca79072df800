"""The routes that forward to certificates: a holder's certificates, confirmation and corrections, revocation,
replacement, production batches and delivery. Each handler only forwards (gateway/api.py assembles every service's
table)."""

from __future__ import annotations

from credence_common.contracts.certificates import (
    ApplyForReplacement,
    BatchList,
    BatchView,
    CancelReplacement,
    CertificateHistoryView,
    CertificateList,
    CertificateView,
    ConfirmCertificate,
    CorrectionRequestList,
    CorrectionRequestView,
    DecideCorrection,
    DecideRevocationCase,
    ReplacementApplicationList,
    ReplacementApplicationView,
    RequestCorrection,
    RevocationCaseList,
    RevocationCaseView,
    RevokeCertificate,
    ShipCertificate,
)
from gateway.routing import CERT_READ, REGISTRAR, Call, Route, dump


def my_certificates(call: Call):
    return call.rpc.call("certificates", "certificates_for_candidate", call.actor, call.principal.subject)


def my_certificate(call: Call):
    return call.rpc.call("certificates", "certificate", call.actor, call.params["certificate_id"])


def certificate_by_number(call: Call):
    return call.rpc.call("certificates", "certificate_by_number", call.actor, call.params["certificate_number"])


def certificate_history(call: Call):
    return call.rpc.call("certificates", "certificate_history", call.actor, call.params["certificate_id"])


def confirm_certificate(call: Call):
    return call.rpc.call("certificates", "confirm_certificate", call.actor, call.params["certificate_id"],
                         dump(call.body))


def request_certificate_correction(call: Call):
    return call.rpc.call("certificates", "request_correction", call.actor, call.params["certificate_id"],
                         dump(call.body))


def certificate_correction_requests(call: Call):
    return call.rpc.call("certificates", "correction_requests", call.actor, call.query.get("all") not in
                         ("1", "true", "yes"))


def decide_certificate_correction(call: Call):
    return call.rpc.call("certificates", "decide_correction", call.actor, call.params["request_id"],
                         dump(call.body))


def revoke_certificate(call: Call):
    return call.rpc.call("certificates", "revoke_certificate", call.actor, call.params["certificate_id"],
                         dump(call.body))


def revocation_cases(call: Call):
    return call.rpc.call("certificates", "revocation_cases", call.actor, call.query.get("status") or None,
                         call.query.get("overdue") in ("1", "true", "yes"))


def decide_revocation_case(call: Call):
    return call.rpc.call("certificates", "decide_revocation_case", call.actor, call.params["case_id"],
                         dump(call.body))


def apply_for_replacement(call: Call):
    return call.rpc.call("certificates", "apply_for_replacement", call.actor, call.params["certificate_id"],
                         dump(call.body))


def replacement_applications(call: Call):
    return call.rpc.call("certificates", "replacement_applications", call.actor, call.query.get("status") or None)


def start_replacement(call: Call):
    return call.rpc.call("certificates", "start_replacement", call.actor, call.params["application_id"])


def complete_replacement(call: Call):
    return call.rpc.call("certificates", "complete_replacement", call.actor, call.params["application_id"])


def withdraw_replacement(call: Call):
    return call.rpc.call("certificates", "withdraw_replacement", call.actor, call.params["application_id"])


def cancel_replacement(call: Call):
    return call.rpc.call("certificates", "cancel_replacement", call.actor, call.params["application_id"],
                         dump(call.body))


def production_batches(call: Call):
    return call.rpc.call("certificates", "production_batches", call.actor)


def close_batch(call: Call):
    return call.rpc.call("certificates", "close_batch", call.actor, call.params["batch_id"])


def batch_csv(call: Call):
    return call.rpc.call("certificates", "batch_csv", call.actor, call.params["batch_id"])


def batch_proof_pdf(call: Call):
    import base64

    return base64.b64decode(call.rpc.call("certificates", "batch_proof_pdf", call.actor, call.params["batch_id"]))


def ship_certificate(call: Call):
    return call.rpc.call("certificates", "ship_certificate", call.actor, call.params["certificate_id"],
                         dump(call.body))


def mark_delivered(call: Call):
    return call.rpc.call("certificates", "mark_delivered", call.actor, call.params["certificate_id"])


def overdue_shipments(call: Call):
    return call.rpc.call("certificates", "overdue_shipments", call.actor)


ROUTES: tuple[Route, ...] = (
    Route("my_certificates", "GET", "/api/v1/me/certificates", "The candidate's certificates",
          ("candidate",), my_certificates, None, CertificateList, tag="certificates"),
    Route("my_certificate", "GET", "/api/v1/me/certificates/<certificate_id>", "One of the candidate's "
          "certificates (or applications)", ("candidate",), my_certificate, None, CertificateView,
          tag="certificates"),
    Route("confirm_certificate", "POST", "/api/v1/me/certificates/<certificate_id>/confirmation",
          "Confirm what will be printed (locks it; the fee falls due to you or your institution)", ("candidate",),
          confirm_certificate, ConfirmCertificate, CertificateView, tag="certificates"),
    Route("request_certificate_correction", "POST", "/api/v1/me/certificates/<certificate_id>/correction-requests",
          "Before confirming: ask staff to correct the name or photo to be printed", ("candidate",),
          request_certificate_correction, RequestCorrection, CorrectionRequestView, 201, tag="certificates"),
    Route("my_certificate_history", "GET", "/api/v1/me/certificates/<certificate_id>/history",
          "Every step of the certificate, in order", ("candidate",), certificate_history, None,
          CertificateHistoryView, tag="certificates"),
    Route("certificate_by_number", "GET", "/api/v1/certificates/by-number/<certificate_number>",
          "A certificate found by its number, with its id, status and delivery (staff)", ("staff",),
          certificate_by_number, None, CertificateView, staff_roles=CERT_READ, tag="certificates"),
    Route("certificate_history", "GET", "/api/v1/certificates/<certificate_id>/history",
          "Every step of a certificate, in order (staff)", ("staff",), certificate_history, None,
          CertificateHistoryView, staff_roles=CERT_READ, tag="certificates"),
    Route("certificate_correction_requests", "GET", "/api/v1/certificate-correction-requests",
          "Open correction requests, oldest first (?all=true: decided ones too; staff)", ("staff",),
          certificate_correction_requests, None, CorrectionRequestList, staff_roles=REGISTRAR, tag="certificates"),
    Route("decide_certificate_correction", "POST", "/api/v1/certificate-correction-requests/<request_id>/decision",
          "Accept (the printed detail changes) or reject a correction request, with a note (staff)", ("staff",),
          decide_certificate_correction, DecideCorrection, CorrectionRequestView, staff_roles=REGISTRAR,
          tag="certificates"),
    Route("revoke_certificate", "POST", "/api/v1/certificates/<certificate_id>/revocation",
          "Revoke an issued certificate with a reason (staff); public checks stop answering valid",
          ("staff",), revoke_certificate, RevokeCertificate, CertificateView, staff_roles=REGISTRAR,
          tag="certificates"),
    Route("revocation_cases", "GET", "/api/v1/revocation-cases",
          "Issued certificates whose qualification a re-check took away, each to be revoked or kept by its "
          "decide_by day (?status=open|revoked|kept, ?overdue=true; staff)", ("staff",), revocation_cases, None,
          RevocationCaseList, staff_roles=REGISTRAR, tag="certificates"),
    Route("decide_revocation_case", "POST", "/api/v1/revocation-cases/<case_id>/decision",
          "Revoke the certificate (reason result_corrected, the note shown as the reason) or keep it with a note "
          "(staff; 409 case_decided when already decided)", ("staff",), decide_revocation_case,
          DecideRevocationCase, RevocationCaseView, staff_roles=REGISTRAR, tag="certificates"),
    Route("apply_for_replacement", "POST", "/api/v1/me/certificates/<certificate_id>/replacement-applications",
          "Apply for a reissue (补办) or a correction-and-replacement (勘误更换, with the identity video) at the fee "
          "in payments' schedule (GET /api/v1/fees); withdrawable until paid", ("candidate",), apply_for_replacement,
          ApplyForReplacement, ReplacementApplicationView, 201, tag="certificates"),
    Route("withdraw_replacement", "POST", "/api/v1/me/replacement-applications/<application_id>/withdrawal",
          "Withdraw an unpaid reissue or correction application; its payment due is cancelled and an open order "
          "for it closed (409 application_paid once paid: staff cancel it and refund)", ("candidate",),
          withdraw_replacement, None, ReplacementApplicationView, tag="certificates"),
    Route("my_replacement_applications", "GET", "/api/v1/me/replacement-applications",
          "The candidate's reissue and correction applications, with any cancellation reason", ("candidate",),
          replacement_applications, None, ReplacementApplicationList, tag="certificates"),
    Route("replacement_applications", "GET", "/api/v1/replacement-applications",
          "Reissue and correction applications (?status=pending|processing|...; staff)", ("staff",),
          replacement_applications, None, ReplacementApplicationList, staff_roles=CERT_READ, tag="certificates"),
    Route("start_replacement", "POST", "/api/v1/replacement-applications/<application_id>/start",
          "Take a paid application into processing (办理中; staff)", ("staff",), start_replacement, None,
          ReplacementApplicationView, staff_roles=REGISTRAR, tag="certificates"),
    Route("complete_replacement", "POST", "/api/v1/replacement-applications/<application_id>/completion",
          "Issue the new certificate; the old one is superseded (staff)", ("staff",), complete_replacement, None,
          ReplacementApplicationView, staff_roles=REGISTRAR, tag="certificates"),
    Route("cancel_replacement", "POST", "/api/v1/replacement-applications/<application_id>/cancellation",
          "Cancel an application with a reason the candidate reads; a paid fee is refunded, an unpaid due is "
          "cancelled (staff)", ("staff",),
          cancel_replacement, CancelReplacement, ReplacementApplicationView, staff_roles=REGISTRAR,
          tag="certificates"),
    Route("production_batches", "GET", "/api/v1/production-batches",
          "Production batches, newest first, with how many certificates each holds (staff)", ("staff",),
          production_batches, None, BatchList, staff_roles=REGISTRAR, tag="certificates"),
    Route("close_batch", "POST", "/api/v1/production-batches/<batch_id>/closure",
          "Close a batch for the printer; certificates issued from now on join the next one (staff)", ("staff",),
          close_batch, None, BatchView, staff_roles=REGISTRAR, tag="certificates"),
    Route("batch_csv", "GET", "/api/v1/production-batches/<batch_id>/export.csv",
          "The batch for the printer, as CSV (UTF-8 with BOM; staff)", ("staff",), batch_csv, None, None,
          content_type="text/csv; charset=utf-8", staff_roles=REGISTRAR, tag="certificates"),
    Route("batch_proof_pdf", "GET", "/api/v1/production-batches/<batch_id>/proof.pdf",
          "The batch's proof sheet, as PDF (staff)", ("staff",), batch_proof_pdf, None, None,
          content_type="application/pdf", staff_roles=REGISTRAR, tag="certificates"),
    Route("ship_certificate", "POST", "/api/v1/certificates/<certificate_id>/shipment",
          "Record the courier and tracking number of a printed certificate (staff)", ("staff",), ship_certificate,
          ShipCertificate, CertificateView, staff_roles=REGISTRAR, tag="certificates"),
    Route("mark_delivered", "POST", "/api/v1/certificates/<certificate_id>/delivery",
          "Record that a shipped certificate was delivered (staff)", ("staff",), mark_delivered, None,
          CertificateView, staff_roles=REGISTRAR, tag="certificates"),
    Route("overdue_shipments", "GET", "/api/v1/certificates/overdue-shipments",
          "Issued certificates not shipped by their ship_by day (SHIPPING_PROMISE_WORKING_DAYS; staff)", ("staff",),
          overdue_shipments, None, CertificateList, staff_roles=REGISTRAR, tag="certificates"),
)
