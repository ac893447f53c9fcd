"""The payment API's edge: who may call (JWT, users), what each caller sees, limits and prices.

The real app on the test Redis and MongoDB, with a fake Stripe (``api_support.FakeGateway``).
Who may call and what each sees: docs/api.md#authentication, docs/api.md#who-sees-what.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from adapters.queue import build_broker
from adapters.settings import Settings
from devstack.procs import free_port
from ingress.composition import create_app
from ingress.payments import PAYMENT_THREADS
from payments_ops import events
from tests.integration.api_support import JWT_SECRET, FakeGateway, Seeded, api_settings, bearer, seed
from tests.support import signed


@dataclasses.dataclass
class Api:
    client: TestClient
    seeded: Seeded
    gateway: FakeGateway
    db: Any


@pytest.fixture
def api(settings: Settings, db: Any) -> Iterator[Api]:
    broker = build_broker(settings)
    gateway = FakeGateway()
    with TestClient(create_app(api_settings(settings), broker=broker, db=db, stripe_gateway=gateway)) as client:
        yield Api(client, seed(db), gateway, db)
    broker.flush_all()
    broker.close()


def create(api: Api, headers: dict[str, str], service: ObjectId | None = None) -> Any:
    body = {"serviceId": str(service or api.seeded.service), "serviceType": "course"}
    return api.client.post("/api/payments/create-intent", json=body, headers=headers)


# Who may call ---------------------------------------------------------------------------------------


def test_a_token_without_exp_is_refused(api: Api) -> None:
    """A signed token with no ``exp`` would be valid forever: 401."""
    forever = jwt.encode({"id": str(api.seeded.customer), "role": "customer"}, JWT_SECRET, "HS256")
    response = create(api, {"Authorization": f"Bearer {forever}"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


def test_a_token_for_a_user_not_in_users_makes_nothing(api: Api) -> None:
    """A well-signed token for an id that is in no ``users`` document: 401, and no payment, no intent."""
    for role in ("customer", "specialist", "admin"):
        response = create(api, bearer(ObjectId(), role))
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
    assert api.db.payments.count_documents({}) == 0 and api.gateway.intents == {}


def test_the_role_comes_from_users_only_when_the_token_has_none(api: Api) -> None:
    """No role claim: the role in ``users`` decides (a customer buys, a specialist is 403, a bad role 401)."""
    assert create(api, bearer(api.seeded.customer, None)).status_code == 200
    assert create(api, bearer(api.seeded.specialist, None)).status_code == 403
    odd = api.db.users.insert_one({"email": "odd@example.test", "role": ["admin"]}).inserted_id
    roleless = api.db.users.insert_one({"email": "none@example.test"}).inserted_id
    assert create(api, bearer(odd, None)).status_code == 401
    assert create(api, bearer(roleless, None)).status_code == 401


@pytest.mark.parametrize("role", [["customer"], {"role": "customer"}, 1, True, "Customer", ""])
def test_a_role_claim_of_the_wrong_type_or_value_is_401(api: Api, role: Any) -> None:
    """A role claim that is a list, an object, a number or an unknown name: 401, never 500."""
    response = create(api, bearer(api.seeded.customer, role))
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("claims", [{"id": ["x"]}, {"id": {"$ne": None}}, {"id": 12}, {"exp": "9999999999"}])
def test_id_and_exp_claims_of_the_wrong_type_are_401(api: Api, claims: dict[str, Any]) -> None:
    """An id that is not a 24-hex string, or an ``exp`` that is not a number: 401."""
    body = {"id": str(api.seeded.customer), "role": "customer", "exp": int(time.time()) + 60, **claims}
    response = create(api, {"Authorization": f"Bearer {jwt.encode(body, JWT_SECRET, 'HS256')}"})
    assert response.status_code == 401


# What each caller sees ------------------------------------------------------------------------------

AT = datetime(2026, 11, 1, tzinfo=UTC)
COMMON = {
    "id",
    "paymentId",
    "customerId",
    "serviceId",
    "serviceType",
    "serviceName",
    "specialistId",
    "amount",
    "currency",
    "status",
    "amountRefunded",
    "refunds",
    "statusHistory",
    "enrollmentId",
    "activatedAt",
    "createdAt",
    "updatedAt",
}


def full_payment(seeded: Seeded) -> dict[str, Any]:
    """A payment with every field the service writes, internal ones included."""
    record = ObjectId()
    return {
        "_id": record,
        "paymentId": "pi_views123",
        "openKey": "some-open-key",
        "creatingUntil": AT,
        "customerId": seeded.customer,
        "customerEmail": "cust@example.test",
        "customerName": "Cust",
        "specialistId": seeded.specialist,
        "specialistEmail": "spec@example.test",
        "specialistName": "Spec",
        "serviceId": seeded.service,
        "serviceType": "course",
        "serviceName": "Course",
        "amount": 49900,
        "currency": "INR",
        "status": "disputed",
        "amountRefunded": 1000,
        "refunds": [{"refundRequestId": "rr_1", "amount": 1000, "status": "succeeded", "stripeRefundId": "re_1"}],
        "dispute": {"id": "dp_1", "status": "needs_response", "amount": 48900, "evidence": {"note": "x"}},
        "reviewRequired": {"reason": "amount_mismatch", "eventId": "evt_1", "at": AT},
        "stripeEventId": "evt_2",
        "lastEventAt": AT,
        "webhookReceivedAt": AT,
        "idempotencyKey": f"intent:{record}",
        "enrollmentId": ObjectId(),
        "activatedAt": AT,
        "statusHistory": [{"status": "pending", "at": AT, "eventId": None}, {"status": "paid", "at": AT, "eventId": "e"}],  # noqa: E501
        "createdAt": AT,
        "updatedAt": AT,
        "someFutureField": "private until listed",
    }  # fmt: skip


def test_each_caller_sees_only_the_fields_that_are_theirs(api: Api) -> None:
    """Customer and specialist get their allow-lists; admins all but openKey and creatingUntil; others 404."""
    doc = full_payment(api.seeded)
    api.db.payments.insert_one(doc)
    url = "/api/payments/pi_views123"
    mine = api.client.get(url, headers=bearer(api.seeded.customer)).json()
    assert set(mine) == COMMON | {"specialistName"}
    assert mine["refunds"] == [{"refundRequestId": "rr_1", "amount": 1000, "status": "succeeded"}]
    assert mine["statusHistory"][1] == {"status": "paid", "at": "2026-11-01T00:00:00.000Z"}
    theirs = api.client.get(url, headers=bearer(api.seeded.specialist, "specialist")).json()
    assert set(theirs) == COMMON | {"customerName", "dispute"}
    assert theirs["dispute"] == {"id": "dp_1", "status": "needs_response", "amount": 48900}
    everything = api.client.get(url, headers=bearer(api.seeded.admin, "admin")).json()
    assert set(everything) == set(doc) - {"_id", "openKey", "creatingUntil"} | {"id"}
    assert everything["reviewRequired"]["reason"] == "amount_mismatch" and everything["dispute"]["evidence"]
    stranger = api.db.users.insert_one({"email": "x@example.test", "role": "customer"}).inserted_id
    assert api.client.get(url, headers=bearer(stranger)).status_code == 404
    history = api.client.get("/api/payments/history/customer", headers=bearer(api.seeded.customer)).json()
    assert [set(item) for item in history["items"]] == [COMMON | {"specialistName"}]


def test_the_history_filters_by_a_known_status_only(api: Api) -> None:
    """``status`` must be a payment status (422 otherwise) and filters the caller's payments."""
    api.db.payments.insert_one(full_payment(api.seeded))
    headers = bearer(api.seeded.customer)
    url = "/api/payments/history/customer"
    assert len(api.client.get(url, params={"status": "disputed"}, headers=headers).json()["items"]) == 1
    assert api.client.get(url, params={"status": "completed"}, headers=headers).json()["items"] == []
    refused = api.client.get(url, params={"status": "paid"}, headers=headers)
    assert (refused.status_code, refused.json()["error"]["field"]) == (422, "status")


# Limits ---------------------------------------------------------------------------------------------


def test_a_streamed_body_over_64_kib_is_cut_off_with_413(api: Api) -> None:
    """A chunked body (no Content-Length) past 64 KiB from a valid customer: 413, and nothing created."""
    chunks = iter([b'{"serviceId": "' + b"0" * 40_000, b"0" * 40_000 + b'"}'])
    response = api.client.post("/api/payments/create-intent", content=chunks, headers=bearer(api.seeded.customer))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    assert api.db.payments.count_documents({}) == 0


def test_create_intent_still_works_when_only_the_rate_limiter_is_down(
    settings: Settings, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis unreachable: the limiter fails open with a warning, and the customer still gets an intent."""
    down = dataclasses.replace(api_settings(settings), redis_url=f"redis://127.0.0.1:{free_port()}/0")
    seeded = seed(db)
    with TestClient(create_app(down, db=db, stripe_gateway=FakeGateway())) as client, caplog.at_level("WARNING"):
        body = {"serviceId": str(seeded.service), "serviceType": "course"}
        response = client.post("/api/payments/create-intent", json=body, headers=bearer(seeded.customer))
    assert response.status_code == 200, response.text
    assert any(r.levelno == logging.WARNING and "rate limiter unavailable" in r.getMessage() for r in caplog.records)


# Prices in the catalog ------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", None, [1], {"$n": 1}])
def test_a_price_that_is_not_a_finite_number_is_422_naming_amount(api: Api, price: Any) -> None:
    """A service whose stored price is NaN, infinite or not a number: 422 validation_error on ``amount``."""
    service = seed(api.db, price=price).service
    response = create(api, bearer(api.seeded.customer), service)
    assert (response.status_code, response.json()["error"]) == (
        422,
        {"code": "validation_error", "message": response.json()["error"]["message"], "field": "amount"},
    )
    assert api.gateway.intents == {}


@pytest.mark.parametrize("price", [1e300, 2**62, "sNaN", "1e999999999", 1_000_000])
def test_a_price_too_large_to_charge_is_422_naming_amount(api: Api, price: Any) -> None:
    """A stored price beyond Stripe's maximum (or 64 bits) or no decimal at all: 422 on ``amount``, not a 500."""
    service = seed(api.db, price=price).service
    response = create(api, bearer(api.seeded.customer), service)
    assert (response.status_code, response.json()["error"].get("field")) == (422, "amount")


# A slow Stripe ---------------------------------------------------------------------------------------


class SlowGateway(FakeGateway):
    """Stripe that hangs on create until released; counts the calls hanging right now."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.hanging = 0

    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        with self.lock:
            self.hanging += 1
        self.release.wait(30)
        return super().create_payment_intent(amount, currency, metadata, idempotency_key)


def test_a_slow_stripe_never_keeps_webhooks_waiting(settings: Settings, db: Any) -> None:
    """Payment routes hanging on Stripe hold at most PAYMENT_THREADS threads; a webhook is still answered at once."""
    broker, gateway = build_broker(settings), SlowGateway()
    app = create_app(api_settings(settings), broker=broker, db=db, stripe_gateway=gateway)
    # More buyers than Starlette's default pool (40): without a pool of their own they would fill it.
    shoppers = [seed(db) for _ in range(44)]
    event = events.event("payment_intent.succeeded", {"id": "pi_slow", "object": "payment_intent"})
    body, headers = signed(event, settings.stripe_webhook_secrets[0])

    async def scenario() -> tuple[int, int, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
            buying = [
                asyncio.create_task(
                    client.post(
                        "/api/payments/create-intent",
                        json={"serviceId": str(s.service), "serviceType": "course"},
                        headers=bearer(s.customer),
                    )
                )
                for s in shoppers
            ]
            while gateway.hanging < PAYMENT_THREADS:  # every payment thread is stuck in Stripe now
                await asyncio.sleep(0.01)
            webhook = await asyncio.wait_for(client.post("/api/webhooks/stripe", content=body, headers=headers), 5)
            hanging_then = gateway.hanging
            gateway.release.set()
            answers = await asyncio.gather(*buying)
        return webhook.status_code, hanging_then, [a.status_code for a in answers]

    try:
        webhook_status, hanging, bought = asyncio.run(scenario())
    finally:
        gateway.release.set()
        broker.flush_all()
        broker.close()
    assert webhook_status == 200
    assert hanging == PAYMENT_THREADS  # the other requests wait for a payment thread, not for the webhook's
    assert bought == [200] * len(shoppers)
