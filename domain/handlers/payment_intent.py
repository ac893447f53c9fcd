"""PaymentIntent outcome events: each moves the payment towards the state Stripe reports."""

from __future__ import annotations

from domain import payments
from domain.events import StripeEvent
from domain.ports import Deps
from domain.transitions import follow


def succeeded(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.COMPLETED, deps)


def processing(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.PROCESSING, deps)


def requires_action(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.REQUIRES_ACTION, deps)


def payment_failed(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.FAILED, deps)


def canceled(event: StripeEvent, deps: Deps) -> str:
    return follow(event, payments.CANCELED, deps)
