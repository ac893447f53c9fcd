"""PaymentIntent outcome events: each moves the payment towards the state Stripe reports."""

from __future__ import annotations

from domain import payments
from domain.activation import intent_mismatch
from domain.events import StripeEvent
from usecases import notices
from usecases.activation import activate, review
from usecases.ports import Deps
from usecases.transitions import IGNORED, PROCESSED, advance, follow, load_payment


def succeeded(event: StripeEvent, deps: Deps) -> str:
    """Verify what was paid, complete the payment, activate the enrollment once, tell both sides.

    An intent that does not pay for the payment (amount, currency, metadata) is flagged for a
    person and never activated; the payment still records that Stripe took the money.
    """
    payment = load_payment(event, deps)
    if payment is None:
        return IGNORED
    mismatch = intent_mismatch(payment, event.object)
    if mismatch:
        review(payment, mismatch.reason, mismatch.details, event.id, deps)
    payment = advance(event, payment, payments.COMPLETED, deps)
    charge = event.object.get("latest_charge")
    if isinstance(charge, str) and charge:  # disputes and refunds may name only the charge
        deps.payments.note_charge(payment, charge)
    if not mismatch:
        activate(payment, deps, verified=True, event_id=event.id)
    return PROCESSED


def payment_failed(event: StripeEvent, deps: Deps) -> str:
    """Mark the payment failed (it can still be paid later) and tell the customer."""
    payment = load_payment(event, deps)
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
