"""PaymentIntent outcome events: each moves the payment towards the state Stripe reports."""

from __future__ import annotations

from domain import payments
from domain.activation import claim_of
from domain.events import StripeEvent
from usecases import notices
from usecases.activation import activate, check_paid
from usecases.ports import Deps
from usecases.transitions import IGNORED, PROCESSED, advance, follow, load_payment, moved_at_once


def succeeded(event: StripeEvent, deps: Deps) -> str:
    """Verify what was paid, complete the payment, activate the enrollment once, tell both sides.

    An intent that does not pay for the payment (amount, currency, metadata) is flagged for a
    person and never activated; the payment still records that Stripe took the money. The
    common case (a payment waiting for this very intent's money) is found and completed in one
    conditional write that matches only a payment the intent pays for; otherwise the payment is
    read, checked and flagged before it may move (a completed, unflagged payment is one the
    stale-work sweep would activate).
    """
    charge = event.object.get("latest_charge")
    charge = charge if isinstance(charge, str) and charge else None  # disputes and refunds may name only it
    payment = moved_at_once(event, payments.COMPLETED, deps, claim_of(event.object), charge)
    payment = payment or load_payment(event, deps)
    if payment is None:
        return IGNORED
    paid = check_paid(payment, event.object, event.id, deps)  # the rule decides, whichever way it was found
    payment = advance(event, payment, payments.COMPLETED, deps, charge)
    if charge is not None:  # already completed (no move carried it): note_charge writes only a new one
        deps.payments.note_charge(payment, charge)
    if paid:
        activate(payment, deps, verified=True, event_id=event.id)
    return PROCESSED


def payment_failed(event: StripeEvent, deps: Deps) -> str:
    """Mark the payment failed (it can still be paid later) and tell the customer."""
    payment = moved_at_once(event, payments.FAILED, deps) or load_payment(event, deps)
    if payment is None:
        return IGNORED
    payment = advance(event, payment, payments.FAILED, deps)
    if payment.status == payments.FAILED:
        error = event.object.get("last_payment_error") or {}
        notices.payment_failed(payment, event.id, str(error.get("message") or "The payment was declined."), deps)
    return PROCESSED


def processing(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.PROCESSING, deps)


def requires_action(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.REQUIRES_ACTION, deps)


def canceled(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.CANCELED, deps)
