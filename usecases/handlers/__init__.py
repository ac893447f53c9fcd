"""The subscription table: every Stripe event type this service handles, and who handles it.

The ingress enqueues only these types (others are answered ``ignored``); the worker dispatches
through this table. A handler returns the inbox outcome: ``processed`` or ``ignored``.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.events import StripeEvent
from usecases.handlers import payment_intent, refunds
from usecases.handlers.disputes import dispute_changed
from usecases.ports import Deps

Handler = Callable[[StripeEvent, Deps], str]

HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": payment_intent.succeeded,
    "payment_intent.processing": payment_intent.processing,
    "payment_intent.requires_action": payment_intent.requires_action,
    "payment_intent.payment_failed": payment_intent.payment_failed,
    "payment_intent.canceled": payment_intent.canceled,
    "charge.refunded": refunds.charge_refunded,
    "charge.refund.updated": refunds.refund_changed,
    "refund.created": refunds.refund_changed,
    "refund.updated": refunds.refund_changed,
    "refund.failed": refunds.refund_changed,
    "charge.dispute.created": dispute_changed,
    "charge.dispute.updated": dispute_changed,
    "charge.dispute.funds_withdrawn": dispute_changed,
    "charge.dispute.funds_reinstated": dispute_changed,
    "charge.dispute.closed": dispute_changed,
}

#: What the ingress accepts.
SUBSCRIBED = frozenset(HANDLERS)
