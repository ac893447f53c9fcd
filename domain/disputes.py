"""The rules of disputes: which update of a dispute wins, and what it does to the payment.

Stripe sends ``charge.dispute.*`` events in any order, more than once. A dispute's ``status`` is
final once ``won``, ``lost`` or ``warning_closed``: a late ``created`` (or any open status) never
undoes a closed dispute. Between two open updates, or two closed ones, the newer event wins.
"""

from __future__ import annotations

from datetime import datetime

from domain.payments import COMPLETED, DISPUTE_LOST, DISPUTED, PARTIALLY_REFUNDED, Dispute

#: Dispute statuses after which nothing changes any more.
CLOSED = frozenset({"won", "lost", "warning_closed"})
#: What a payment goes back to when a dispute is won (the status it had when disputed).
RESTORABLE = frozenset({COMPLETED, PARTIALLY_REFUNDED})


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


def status_before(payment_status: str, stored: Dispute | None) -> str:
    """The status a won dispute gives back: the one recorded, else the payment's own if it can be given back."""
    if stored is not None:
        return stored.status_before
    return payment_status if payment_status in RESTORABLE else COMPLETED


def payment_status(dispute_status: str, before: str) -> str:
    """The payment's status for a dispute in ``dispute_status``: disputed while open, lost, or back as before."""
    if dispute_status == "lost":
        return DISPUTE_LOST
    if dispute_status in CLOSED:
        return before
    return DISPUTED


def enrollment_effect(dispute_status: str) -> str:
    """What happens to the enrollment this payment activated: ``suspend``, ``reinstate`` or ``cancel``."""
    if dispute_status == "lost":
        return "cancel"
    return "reinstate" if dispute_status in CLOSED else "suspend"
