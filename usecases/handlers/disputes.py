"""Disputes: the payment and its enrollment follow the dispute, whatever order Stripe's events come in.

One handler for every ``charge.dispute.*`` event: the event's dispute object says where the
dispute stands. An update is applied only over an older one (``domain.disputes.supersedes``);
applying is idempotent: record the dispute (conditional on the version read), move the payment
to what the dispute and its refunds call for together (``disputed`` while open, ``dispute_lost``,
else what was refunded: ``usecases.transitions.settle``), suspend, reinstate or cancel the
enrollment this payment activated accordingly, and tell the specialist and ops (once per dispute and stage).
Disputes are never asked of Stripe: the local Stripe has no disputes API, and the event is signed.
"""

from __future__ import annotations

import logging

from domain import disputes
from domain.errors import RetryLater
from domain.events import StripeEvent
from domain.payments import Payment
from usecases import notices
from usecases.ports import Deps
from usecases.transitions import IGNORED, PROCESSED, payment_of, reload, settle

log = logging.getLogger(__name__)

_ATTEMPTS = 5

#: Facts a funds event adds to the stored dispute.
FLAGS = {
    "charge.dispute.funds_withdrawn": {"fundsWithdrawn": True},
    "charge.dispute.funds_reinstated": {"fundsReinstated": True},
}


def dispute_changed(event: StripeEvent, deps: Deps) -> str:
    """Apply a dispute update to its payment and enrollment (created, updated, funds, closed)."""
    payment = payment_of(event.object, deps)
    if payment is None:
        return IGNORED
    status = str(event.object.get("status"))
    for _ in range(_ATTEMPTS):
        if not disputes.supersedes(status, event.created_at, payment.dispute):
            log.info("older dispute update", extra={"status": status, "outcome": "stale"})
            return PROCESSED
        before = disputes.status_before(payment.status, payment.dispute)
        flags = FLAGS.get(event.type, {})
        if deps.disputes.record(payment, event.object, event.created_at, before, flags):
            _follow(reload(payment, deps), status, event, deps)
            return PROCESSED
        payment = reload(payment, deps)
    raise RetryLater(f"the dispute on {payment.intent_id} kept changing under us")


def _follow(payment: Payment, status: str, event: StripeEvent, deps: Deps) -> None:
    payment = settle(payment, deps, event.id)
    dispute_id = str(event.object.get("id"))
    effect = disputes.enrollment_effect(payment.status)
    if effect == "suspend":
        deps.enrollments.suspend(payment, dispute_id)
    elif effect == "cancel":
        deps.enrollments.cancel(payment, payment.status)
    elif effect == "reinstate":
        deps.enrollments.reinstate(payment, dispute_id, payment.status)
    if status in disputes.CLOSED:
        notices.dispute_closed(payment, event.object, deps)
    else:
        notices.dispute_opened(payment, event.object, deps)
