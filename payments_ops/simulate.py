"""``payments-ops simulate``: sign and post a realistic Stripe event to the ingress, like ``stripe trigger``.

The event is built from Stripe's own example objects (``payments_ops/events.py``) for a stored
payment (``--payment pi_…``), or for a pending payment stored first, as create-intent would.
The local stack's walkthrough (``python -m devstack.send_event``) and the tests post theirs with
the same functions.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bson import ObjectId

from adapters.checkout import open_key
from adapters.mongo import now
from payments_ops import events

#: The event types ``simulate`` builds (PaymentIntent outcomes).
TYPES = sorted(events.INTENT_STATES)


def pending_payment(intent_id: str, amount: int = 49900, currency: str = "INR") -> dict[str, Any]:
    """A pending ``payments`` document as create-intent stores it, for made-up parties."""
    at = now()
    customer_id, service_id = ObjectId(), ObjectId()
    return {
        "_id": ObjectId(),
        "paymentId": intent_id,
        "openKey": open_key(customer_id, service_id),
        "customerId": customer_id,
        "serviceId": service_id,
        "specialistId": ObjectId(),
        "serviceType": "course",
        "serviceName": "Seeded course",
        "customerEmail": "seed-customer@example.com",
        "customerName": "Seed Customer",
        "specialistEmail": "seed-specialist@example.com",
        "specialistName": "Seed Specialist",
        "amount": amount,
        "currency": currency,
        "status": "pending",
        "amountRefunded": 0,
        "refunds": [],
        "statusHistory": [{"status": "pending", "at": at, "eventId": None}],
        "createdAt": at,
        "updatedAt": at,
    }


def post_event(ingress: str, secret: str, event: dict[str, Any]) -> tuple[int, str]:
    """Sign and POST ``event`` as Stripe would; return the status and body of the answer."""
    body = json.dumps(event).encode()
    request = urllib.request.Request(
        ingress + "/api/webhooks/stripe",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": events.sign(body, secret)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


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
