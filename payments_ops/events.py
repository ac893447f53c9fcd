"""Realistic, signed Stripe test events (like ``stripe trigger``), built from Stripe's own fixtures.

Used by ``payments-ops simulate``, the local stack's ``python -m devstack.send_event`` and the
tests, so all of them post payloads of the shape Stripe really sends. The fixtures ship in the
wheel with this package.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from domain.events import SOURCE

__all__ = ["SOURCE", "event", "fixture", "intent_metadata", "new_id", "payment_intent", "sign"]

_FIXTURES = Path(__file__).with_name("fixtures") / "stripe_objects.json"

#: How each PaymentIntent event type leaves the intent (Stripe's documented states).
INTENT_STATES: dict[str, dict[str, Any]] = {
    "payment_intent.succeeded": {"status": "succeeded", "last_payment_error": None, "next_action": None},
    "payment_intent.processing": {"status": "processing", "last_payment_error": None, "next_action": None},
    "payment_intent.requires_action": {
        "status": "requires_action",
        "last_payment_error": None,
        "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}},
    },
    "payment_intent.payment_failed": {
        "status": "requires_payment_method",
        "next_action": None,
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        },
    },
    "payment_intent.canceled": {
        "status": "canceled",
        "last_payment_error": None,
        "next_action": None,
        "cancellation_reason": "requested_by_customer",
    },
}


@cache
def _fixtures() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_FIXTURES.read_text())
    return data


def fixture(name: str) -> dict[str, Any]:
    """A fresh copy of one of Stripe's example objects (``payment_intent``, ``charge``, …)."""
    return copy.deepcopy(_fixtures()[name])


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def payment_intent(
    event_type: str, intent_id: str, amount: int, currency: str, metadata: dict[str, str]
) -> dict[str, Any]:
    """A PaymentIntent as it stands after ``event_type``."""
    intent = fixture("payment_intent")
    intent.update(
        id=intent_id,
        amount=amount,
        currency=currency.lower(),
        metadata=dict(metadata),
        client_secret=f"{intent_id}_secret_{secrets.token_hex(8)}",
        canceled_at=None,
        automatic_payment_methods=None,
        transfer_data=None,
        processing=None,
        amount_received=0,
        latest_charge=None,
    )
    intent.update(INTENT_STATES[event_type])
    if event_type == "payment_intent.succeeded":
        intent.update(amount_received=amount, latest_charge=new_id("ch"))
    return intent


def intent_metadata(payment: Mapping[str, Any]) -> dict[str, str]:
    """The PaymentIntent metadata create-intent writes (docs/data.md#payments), for a stored payment."""
    return {
        "paymentRecordId": str(payment["_id"]),
        "customerId": str(payment["customerId"]),
        "serviceId": str(payment["serviceId"]),
        "serviceType": str(payment.get("serviceType", "")),
        "specialistId": str(payment.get("specialistId", "")),
        "source": SOURCE,
    }


def event(
    event_type: str, obj: dict[str, Any], created: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """A Stripe event envelope around ``obj``."""
    envelope = fixture("event")
    envelope.update(
        id=event_id or new_id("evt"),
        type=event_type,
        created=int(time.time()) if created is None else created,
        data={"object": obj},
        api_version="2024-06-20",
        pending_webhooks=1,
        request={"id": new_id("req"), "idempotency_key": None},
    )
    return envelope


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``body``."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), b"%d.%s" % (ts, body), hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"
