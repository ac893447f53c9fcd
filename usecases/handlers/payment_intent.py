"""PaymentIntent outcome events: each moves the payment towards the state Stripe reports."""

from __future__ import annotations

from domain import payments
from domain.activation import AMOUNT_MISMATCH, activate, intent_problem, notify_failed, review
from domain.events import StripeEvent
from domain.ports import Deps
from domain.transitions import IGNORED, PROCESSED, advance, follow, load_payment


def succeeded(event: StripeEvent, deps: Deps) -> str:
    """Verify what was paid, complete the payment, activate the enrollment, tell both sides."""
    payment = load_payment(event, deps)
    if payment is None:
        return IGNORED
    problem = intent_problem(payment, event.object)
    if problem:
        review(payment, AMOUNT_MISMATCH, problem, event.id, deps)
        return PROCESSED
    payment = advance(event, payment, payments.COMPLETED, deps)
    if payment.status in payments.PAID:
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
        notify_failed(payment, event.id, str(error.get("message") or "The payment was declined."), deps)
    return PROCESSED


def processing(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.PROCESSING, deps)


def requires_action(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.REQUIRES_ACTION, deps)


def canceled(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.CANCELED, deps)
