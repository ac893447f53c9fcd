"""Payments stored as create-intent stores them, and the signed Stripe events that pay for them.

Built with ``payments_ops`` (``simulate.pending_payment``, ``events``), as the tests and the local
walkthrough build theirs, so the worker finds what it would find in production.
"""

from __future__ import annotations

import json
from typing import Any

from payments_ops import events
from payments_ops.simulate import pending_payment

SUCCEEDED = "payment_intent.succeeded"
#: The issue's body size: a real ``payment_intent.succeeded`` delivery is about 3 KB.
BODY_BYTES = 3072
#: Real Stripe event types to pick the "verified but not enqueued" body from.
UNHANDLED_CANDIDATES = ("payment_intent.created", "customer.created", "charge.updated")


def payments(count: int) -> list[dict[str, Any]]:
    """``count`` pending payments, each for its own customer and service (not stored)."""
    return [pending_payment(events.new_id("pi")) for _ in range(count)]


def seed(db: Any, count: int) -> list[dict[str, Any]]:
    """``count`` pending payments, stored in ``db.payments``."""
    made = payments(count)
    for start in range(0, count, 500):
        db.payments.insert_many(made[start : start + 500])
    return made


def succeeded(payment: dict[str, Any], pad_to: int = 0, event_type: str = SUCCEEDED) -> dict[str, Any]:
    """The event that pays for ``payment``, its JSON padded to ``pad_to`` bytes.

    The padding is the intent's ``description``, a real field no handler reads; the fixture's
    event alone is about 1.7 KB.
    """
    metadata = events.intent_metadata(payment)
    intent = events.payment_intent(SUCCEEDED, payment["paymentId"], 49900, "INR", metadata)
    event = events.event(event_type, intent)
    short = pad_to - len(json.dumps(event))
    if short > 0:
        intent["description"] = "x" * max(0, short - len(', "description": ""'))
    return event


def unhandled_type(subscribed: frozenset[str]) -> str:
    """A real Stripe event type the ingress verifies but does not enqueue."""
    return next(t for t in UNHANDLED_CANDIDATES if t not in subscribed)


def signed(bodies: list[bytes], secret: str) -> list[tuple[bytes, str]]:
    """Each body with its ``Stripe-Signature`` for now (the ingress refuses one 300 s off)."""
    return [(body, events.sign(body, secret)) for body in bodies]


def encoded(event_list: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(event).encode() for event in event_list]
