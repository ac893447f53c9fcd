"""Refund events: each brings the payment's refunds to what Stripe says (``usecases.refunds.record_refund``).

``charge.refunded`` carries the charge (whose ``refunds`` list is not expanded in current API
versions), so its handler asks Stripe for the intent's refunds; the refund events carry the refund.
Refunds of payments this service did not create are ``ignored``.
"""

from __future__ import annotations

from domain.events import StripeEvent
from usecases.ports import Deps
from usecases.refunds import record_refund
from usecases.transitions import IGNORED, PROCESSED, payment_of


def charge_refunded(event: StripeEvent, deps: Deps) -> str:
    """A charge was refunded, in part or in full: record every refund Stripe has for it."""
    payment = payment_of({"payment_intent": event.object.get("payment_intent"), "charge": event.object_id}, deps)
    if payment is None:
        return IGNORED
    for refund in deps.stripe.list_refunds(payment.intent_id):
        record_refund(deps.payments.by_intent(payment.intent_id) or payment, refund, deps)
    return PROCESSED


def refund_changed(event: StripeEvent, deps: Deps) -> str:
    """refund.created / refund.updated / refund.failed / charge.refund.updated: record that refund."""
    payment = payment_of(event.object, deps)
    if payment is None:
        return IGNORED
    record_refund(payment, event.object, deps)
    return PROCESSED
