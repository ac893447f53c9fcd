"""``payments-ops simulate``: sign and post a realistic Stripe event to the ingress, like ``stripe trigger``.

The event is built from Stripe's own example objects (``devstack/events.py``) for a stored payment
(``--payment pi_…``), or for a pending payment stored first, as create-intent would.
"""

from __future__ import annotations

from typing import Any

from devstack import events
from devstack.send_event import pending_payment, post_event

#: The event types ``simulate`` builds (PaymentIntent outcomes).
TYPES = sorted(events.INTENT_STATES)


def simulate(db: Any, ingress: str, secret: str, event_type: str, intent_id: str | None) -> tuple[int, str, str]:
    """Post one signed event; returns the ingress's status, its answer and the payment's intent id."""
    if intent_id is None:
        payment = pending_payment(events.new_id("pi"))
        db.payments.insert_one(payment)
    else:
        payment = db.payments.find_one({"paymentId": intent_id})
        if payment is None:
            raise LookupError(f"no payment {intent_id}")
    intent = events.payment_intent(
        event_type, payment["paymentId"], payment["amount"], payment["currency"], events.intent_metadata(payment)
    )
    status, body = post_event(ingress, secret, events.event(event_type, intent))
    return status, body, str(payment["paymentId"])
