"""The rules of disputes: which update of a dispute wins, and what it does to the enrollment.

Stripe sends ``charge.dispute.*`` events in any order, more than once. A dispute's ``status`` is
final once ``won``, ``lost`` or ``warning_closed``: a late ``created`` (or any open status) never
undoes a closed dispute. Between two open updates, or two closed ones, the newer event wins. The
payment's status follows from the dispute and the refunds together (``domain.payments.paid_status``).
"""

from __future__ import annotations

from datetime import datetime

from domain.payments import (
    COMPLETED,
    DISPUTE_CLOSED,
    DISPUTE_LOST,
    DISPUTED,
    PARTIALLY_REFUNDED,
    REFUNDED,
    Dispute,
)

#: Dispute statuses after which nothing changes any more.
CLOSED = DISPUTE_CLOSED
#: The paid statuses a payment can be in when a dispute opens (kept as ``statusBefore``).
RESTORABLE = frozenset({COMPLETED, PARTIALLY_REFUNDED, REFUNDED})


def supersedes(incoming_status: str, incoming_at: datetime, stored: Dispute | None) -> bool:
    """True when an update (status, event time) should be applied over what is stored.

    An equal update is applied again (its effects are idempotent), so a crash after recording it
    and before its effects is healed by the redelivery.
    """
    if stored is None:
        return True
    if (incoming_status in CLOSED) != (stored.status in CLOSED):
        return incoming_status in CLOSED
    return incoming_at >= stored.event_at


def is_open(dispute: Dispute | None) -> bool:
    """True while a recorded dispute is not closed (whether or not the payment was moved yet)."""
    return dispute is not None and dispute.status not in CLOSED


def status_before(payment_status: str, stored: Dispute | None) -> str:
    """The status recorded as the one before the dispute: the one recorded, else the payment's own paid one."""
    if stored is not None:
        return stored.status_before
    return payment_status if payment_status in RESTORABLE else COMPLETED


def enrollment_effect(payment_status: str) -> str | None:
    """What a dispute update does to the enrollment this payment activated, from the payment's status after it.

    ``suspend`` while disputed; ``cancel`` once fully refunded or lost; ``reinstate`` (only what this
    dispute suspended) when it closed with the money, or part of it, kept; None for an unpaid payment.
    """
    if payment_status == DISPUTED:
        return "suspend"
    if payment_status in (REFUNDED, DISPUTE_LOST):
        return "cancel"
    if payment_status in (COMPLETED, PARTIALLY_REFUNDED):
        return "reinstate"
    return None
