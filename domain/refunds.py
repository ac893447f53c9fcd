"""The rules of refunds: who may ask, how much is left, what a refund does to the payment's status.

Pure functions of values; ``usecases.refunds`` asks them and writes. Money is in minor units.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.disputes import is_open
from domain.errors import RequestRefused
from domain.payments import COMPLETED, DISPUTED, PARTIALLY_REFUNDED, Payment, Refund, paid_status

#: The reasons Stripe's Refunds API takes; any other text is kept on our side only.
STRIPE_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

#: Reasons a customer may not give. Stripe takes ``fraudulent`` as a report of fraud: the card and
#: email go on the account's block lists. A buyer refunding their own purchase reports no fraud;
#: the specialist or an admin may.
STAFF_ONLY_REASONS = frozenset({"fraudulent"})

#: Statuses from which money can still go back.
REFUNDABLE = frozenset({COMPLETED, PARTIALLY_REFUNDED})

#: A refund request's statuses: ours (``pending``) until Stripe's answer is recorded.
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
#: Stripe refund statuses that mean the money will not go back.
NOT_REFUNDED = frozenset({FAILED, "canceled"})
#: Why a request no run could carry out was failed by the stale-work sweep (its requester reads it).
ABANDONED = "it could not be carried out in time; our team has been told and will look into it"


def remainder(payment: Payment) -> int:
    """What may still be refunded: the amount less what is refunded and what pending requests hold."""
    return payment.paid_amount - payment.amount_refunded - payment.refund_reserved


def refund_amount(payment: Payment, requested: int | None, *, customer: bool, now: datetime, window: timedelta) -> int:
    """The amount to refund for this request, or the refusal (409 ``not_refundable``) naming why.

    ``requested`` None asks for everything left. A customer may ask within ``window`` of the
    payment; the specialist and admins at any time.
    """
    # An open dispute refuses whether or not the payment was moved to disputed yet.
    if payment.status == DISPUTED or is_open(payment.dispute):
        raise RequestRefused("not_refundable", "the payment is under dispute")
    if payment.status not in REFUNDABLE:
        raise RequestRefused("not_refundable", f"a {payment.status} payment cannot be refunded")
    if customer and (payment.paid_at is None or now - payment.paid_at > window):
        raise RequestRefused("not_refundable", f"refunds can be asked within {window.days} days of payment")
    left = remainder(payment)
    amount = left if requested is None else requested
    if amount <= 0 or amount > left:
        raise RequestRefused("not_refundable", f"{left} is left to refund", "amount")
    return amount


def check_reason(reason: str | None, *, customer: bool) -> None:
    """Refuse (422 ``validation_error`` on ``reason``) a reason the requester may not give."""
    if customer and reason in STAFF_ONLY_REASONS:
        raise RequestRefused("validation_error", f"a customer may not give {reason} as the reason", "reason")


def stripe_reason(reason: str | None) -> str | None:
    """The ``reason`` Stripe takes for this request; free text stays with us."""
    return reason if reason in STRIPE_REASONS else None


def status_after_refunds(amount: int, refunded: int) -> str | None:
    """The status refunds alone call for (``paid_status`` with no dispute), or None when nothing went back."""
    status = paid_status(amount, refunded, None)
    return None if status == COMPLETED else status


def reported(current: str, stripe_status: str) -> str:
    """The status a refund entry takes when Stripe reports ``stripe_status`` for it: failed is final.

    Stripe's events arrive in any order, so a ``created`` or ``updated`` may come after the
    ``failed`` that followed it; a refund that failed never moves, counts or refunds again.
    """
    if current == FAILED or stripe_status in NOT_REFUNDED:
        return FAILED
    return stripe_status


def holds_reservation(entry: Refund) -> bool:
    """True while a request's amount is in ``refundReserved``: neither counted nor given back yet.

    Decided from the entry itself, so whoever sees its failure first gives the amount back, once.
    """
    return entry.request_id is not None and not entry.counted and not entry.released


def abandoned(entry: Refund) -> bool:
    """True for a request the stale-work sweep gave up on (ops are told), not one Stripe refused."""
    return entry.status == FAILED and entry.failure_reason == ABANDONED
