"""The payment API in-process for integration tests: the real app on the test Redis and MongoDB, a fake Stripe.

Used by the property-based and schemathesis tests, which send many requests and need the app
without a local Stripe: ``FakeGateway`` answers the three calls create-intent and confirm-payment
make, and ``seed`` writes users and a service as the MERN app would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import stripe
from bson import ObjectId
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from adapters.queue import build_broker
from adapters.settings import Settings
from adapters.stripe_gateway import StripeGateway
from ingress.composition import create_app

#: A JWT secret long enough for HS256 (PyJWT warns below 32 bytes, and warnings are errors here).
JWT_SECRET = "integration-jwt-secret-of-at-least-32-bytes"
ERROR_CODE = re.compile(r"[a-z][a-z_]*")


class FakeGateway(StripeGateway):
    """PaymentIntents kept in a dict, as Stripe would answer for them; no network."""

    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}

    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        intent_id = f"pi_{secrets.token_hex(12)}"
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": currency.lower(),
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "metadata": dict(metadata),
        }
        return self.intents[intent_id]

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        if intent_id not in self.intents:
            raise stripe.InvalidRequestError(f"No such payment_intent: '{intent_id}'", "intent")
        return self.intents[intent_id]

    def update_payment_intent_amount(self, intent_id: str, amount: int) -> Mapping[str, Any]:
        intent = dict(self.retrieve_payment_intent(intent_id), amount=amount)
        self.intents[intent_id] = intent
        return intent


@contextlib.contextmanager
def client_of(
    settings: Settings, db: Any, wrap: Callable[[ASGIApp], ASGIApp] | None = None, **options: Any
) -> Iterator[TestClient]:
    """The app with ``settings`` on the test Redis and MongoDB, Stripe a ``FakeGateway``, under Starlette's
    TestClient (``options`` for it; ``wrap`` around the app, if given)."""
    broker = build_broker(settings)
    try:
        app = create_app(settings, broker=broker, db=db, stripe_gateway=FakeGateway())
        with TestClient(wrap(app) if wrap else app, **options) as client:
            yield client
    finally:
        broker.close()


def api_settings(settings: Settings) -> Settings:
    """The integration settings with a long JWT secret, rate limits examples never reach, the default webhook cap."""
    return dataclasses.replace(
        settings,
        jwt_secret=JWT_SECRET,
        rate_limit_per_minute=1_000_000,
        refund_rate_limit_per_minute=1_000_000,
        refund_payment_rate_limit_per_minute=1_000_000,
        webhook_max_bytes=1_048_576,
    )


def token(user_id: Any, role: Any = "customer", ttl: int = 3600, **claims: Any) -> str:
    """A MERN-style JWT signed with ``JWT_SECRET``; ``claims`` add or override (``exp=None`` drops it)."""
    body: dict[str, Any] = {"id": str(user_id), "role": role, "exp": int(time.time()) + ttl, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, JWT_SECRET, "HS256")


def bearer(user_id: Any, role: Any = "customer", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, role, **claims)}"}


@dataclass(frozen=True)
class Seeded:
    customer: ObjectId
    specialist: ObjectId
    admin: ObjectId
    service: ObjectId


def seed(db: Any, price: Any = 499, currency: str = "INR") -> Seeded:
    """A customer, a specialist, an admin and one active course of the specialist's, as the MERN app stores them."""
    tag = secrets.token_hex(4)
    ids = {
        role: db.users.insert_one(
            {"email": f"{role}-{tag}@example.test", "name": f"{role} {tag}", "role": role}
        ).inserted_id
        for role in ("customer", "specialist", "admin")
    }
    service = db.services.insert_one(
        {
            "name": f"Course {tag}",
            "type": "course",
            "price": price,
            "currency": currency,
            "specialistId": ids["specialist"],
            "active": True,
        }
    ).inserted_id
    return Seeded(ids["customer"], ids["specialist"], ids["admin"], service)


def assert_error_shape(status: int, body: Any, text: str) -> None:
    """An error answer is exactly ``{"error": {"code", "message", "field"?}}`` with no traceback in it."""
    assert "Traceback" not in text and 'File "' not in text, text
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message"} <= set(error) <= {"code", "message", "field"}, body
    assert all(isinstance(v, str) for v in error.values()), body
    assert ERROR_CODE.fullmatch(error["code"]), body
    if status == 500:
        assert error == {"code": "internal_error", "message": "internal error"}, body
