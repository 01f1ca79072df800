"""Who consumes which event inside the platform.

Publishers declare these queues at start-up (besides the consumers themselves) because nameko's
dispatcher publishes with ``mandatory`` off: an event sent before its queue exists would be dropped
silently. Declaring the queue from both sides makes the start order of services irrelevant.
A test checks this table against the ``@event_handler`` entrypoints of the services.
"""

from __future__ import annotations

from dataclasses import dataclass

from credence_common.contracts.envelope import EventPayload
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateQualifiedV1,
    CandidateTransferredV1,
    CertificateAwaitingPaymentV1,
    CertificateIssuedV1,
    CertificateRefundRequestedV1,
    CertificateRevokedV1,
    CertificateSupersededV1,
    FeeNoLongerDueV1,
    PaymentRefundedV1,
    PaymentSucceededV1,
    QualificationWithdrawnV1,
    ReplacementAwaitingPaymentV1,
    ResultCorrectedV1,
    TicketsLinkedV1,
    TicketsMergedV1,
)


@dataclass(frozen=True)
class Subscription:
    consumer: str
    handler: str
    event: type[EventPayload]

    @property
    def publisher(self) -> str:
        return self.event.publisher

    @property
    def queue_name(self) -> str:
        # nameko's SERVICE_POOL naming, so the handler consumes from the very queue we declare.
        return f"evt-{self.publisher}-{self.event.event_type}--{self.consumer}.{self.handler}"


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("scoring", "handle_candidate_confirmed", CandidateConfirmedV1),
    Subscription("scoring", "handle_tickets_linked", TicketsLinkedV1),
    Subscription("scoring", "handle_candidate_transferred", CandidateTransferredV1),
    Subscription("scoring", "handle_tickets_merged", TicketsMergedV1),
    Subscription("certificates", "handle_candidate_confirmed", CandidateConfirmedV1),
    Subscription("certificates", "handle_candidate_qualified", CandidateQualifiedV1),
    Subscription("payments", "handle_certificate_awaiting_payment", CertificateAwaitingPaymentV1),
    Subscription("payments", "handle_replacement_awaiting_payment", ReplacementAwaitingPaymentV1),
    Subscription("payments", "handle_fee_no_longer_due", FeeNoLongerDueV1),
    Subscription("certificates", "handle_payment_succeeded", PaymentSucceededV1),
    Subscription("certificates", "handle_qualification_withdrawn", QualificationWithdrawnV1),
    Subscription("certificates", "handle_payment_refunded", PaymentRefundedV1),
    Subscription("payments", "handle_refund_requested", CertificateRefundRequestedV1),
    Subscription("verification", "handle_certificate_issued", CertificateIssuedV1),
    Subscription("verification", "handle_certificate_revoked", CertificateRevokedV1),
    Subscription("verification", "handle_certificate_superseded", CertificateSupersededV1),
    Subscription("verification", "handle_result_corrected", ResultCorrectedV1),
)


def subscriptions_published_by(service_name: str) -> list[Subscription]:
    return [s for s in SUBSCRIPTIONS if s.publisher == service_name]


def subscribers_of(event_type: str) -> list[Subscription]:
    return [s for s in SUBSCRIPTIONS if s.event.event_type == event_type]
