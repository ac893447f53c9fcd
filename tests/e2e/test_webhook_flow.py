"""Stripe → ingress → Redis → worker → MongoDB, through real HTTP and real processes (issue 3)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from devstack.send_event import seed_payment
from devstack.stack import Stack
from payments_ops import events
from tests.conftest import REAL_REDIS
from tests.support import queued_messages, signed, wait_for


def pending_payment(db: Any) -> tuple[str, dict[str, str]]:
    intent_id = events.new_id("pi")
    return intent_id, seed_payment(db, intent_id)


def intent_event(event_type: str, intent_id: str, metadata: dict[str, str]) -> dict[str, Any]:
    return events.event(event_type, events.payment_intent(event_type, intent_id, 49900, "INR", metadata))


def processed(db: Any, event_id: str) -> Any:
    return db.stripe_events.find_one({"_id": event_id, "status": "processed"})


def test_a_signed_succeeded_event_completes_the_payment(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """A signed payment_intent.succeeded moves the pending payment to completed."""
    intent_id, metadata = pending_payment(stack_db)
    event = intent_event("payment_intent.succeeded", intent_id, metadata)
    body, headers = signed(event, stack.webhook_secret)
    assert http.post("/api/webhooks/stripe", content=body, headers=headers).json() == {"received": True}
    wait_for(lambda: processed(stack_db, event["id"]), what="event processed")
    payment = stack_db.payments.find_one({"paymentId": intent_id})
    assert (payment["status"], payment["stripeEventId"]) == ("completed", event["id"])
    assert [h["status"] for h in payment["statusHistory"]] == ["pending", "completed"]


def test_five_concurrent_deliveries_are_processed_once(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """The same event delivered 5 times at once is recorded 5 times and applied once."""
    intent_id, metadata = pending_payment(stack_db)
    event = intent_event("payment_intent.succeeded", intent_id, metadata)
    body, headers = signed(event, stack.webhook_secret)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: http.post("/api/webhooks/stripe", content=body, headers=headers), range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    wait_for(lambda: (stack_db.stripe_events.find_one({"_id": event["id"]}) or {}).get("attempts") == 5, what="5")
    wait_for(lambda: processed(stack_db, event["id"]), what="event processed")
    history = stack_db.payments.find_one({"paymentId": intent_id})["statusHistory"]
    assert [h["status"] for h in history] == ["pending", "completed"]


def test_bad_deliveries_are_refused_and_nothing_is_processed(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """Forged, stale, oversized and malformed deliveries get 400/400/413/400 and leave no trace."""
    intent_id, metadata = pending_payment(stack_db)
    forged_event, stale_event = (intent_event("payment_intent.succeeded", intent_id, metadata) for _ in range(2))
    forged = signed(forged_event, "whsec_attacker")
    stale = signed(stale_event, stack.webhook_secret, int(time.time()) - 400)
    huge = b'{"id": "evt_huge", "pad": "' + b"x" * 1_048_576 + b'"}'
    broken = b'{"id": "evt_broken", "type": '
    answers = [
        http.post("/api/webhooks/stripe", content=forged[0], headers=forged[1]),
        http.post("/api/webhooks/stripe", content=stale[0], headers=stale[1]),
        http.post("/api/webhooks/stripe", content=huge, headers={"Stripe-Signature": events.sign(huge, "whsec_x")}),
        http.post("/api/webhooks/stripe", content=broken, headers=signed_header(broken, stack.webhook_secret)),
    ]
    assert [a.status_code for a in answers] == [400, 400, 413, 400]
    assert [a.json()["error"]["code"] for a in answers] == [
        "invalid_signature",
        "invalid_signature",
        "payload_too_large",
        "malformed_json",
    ]
    # A good delivery after them is processed; by then any enqueued bad one would have been too.
    good = intent_event("payment_intent.processing", intent_id, metadata)
    http.post(
        "/api/webhooks/stripe",
        content=signed(good, stack.webhook_secret)[0],
        headers=signed(good, stack.webhook_secret)[1],
    )
    wait_for(lambda: processed(stack_db, good["id"]), what="good event processed")
    assert stack_db.stripe_events.count_documents({"_id": {"$in": [forged_event["id"], stale_event["id"]]}}) == 0
    assert stack_db.payments.find_one({"paymentId": intent_id})["status"] == "processing"


def signed_header(body: bytes, secret: str) -> dict[str, str]:
    return {"Stripe-Signature": events.sign(body, secret), "Content-Type": "application/json"}


def test_a_permanent_error_lands_in_the_dead_letters_with_its_reason(
    stack: Stack, http: httpx.Client, stack_db: Any, stack_redis: redis.Redis
) -> None:
    """A signed event the worker can never handle is dead-lettered and its reason recorded."""
    event = events.event("payment_intent.succeeded", {"object": "payment_intent"})
    body, headers = signed(event, stack.webhook_secret)
    assert http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    failure = wait_for(lambda: stack_db.job_failures.find_one({"messageId": event["id"]}), what="failure record")
    assert "data.object.id: expected a Stripe id" in failure["error"]
    dead = queued_messages(stack_redis, "stripe-events.XQ")
    assert event["id"] in [m.message_id for m in dead]


@pytest.mark.slow
@pytest.mark.skipif(bool(REAL_REDIS), reason="stops Redis, which it may only do to its own")
def test_redis_down_answers_503_and_stripes_retry_is_processed(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """With Redis stopped the ingress answers 503; once it is back, Stripe's retry is processed."""
    intent_id, metadata = pending_payment(stack_db)
    event = intent_event("payment_intent.succeeded", intent_id, metadata)
    body, headers = signed(event, stack.webhook_secret)
    stack.stop_part("redis")
    try:
        refused = http.post("/api/webhooks/stripe", content=body, headers=headers)
        assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
        assert http.get("/api/webhooks/health").json()["redis"] == "down"
    finally:
        stack.restart_part("redis")
    # Stripe retries until it gets a 200; the ingress's connection may need a moment to come back.
    wait_for(lambda: http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200, 15,
             "Stripe's retry accepted once Redis is back")  # fmt: skip
    wait_for(lambda: processed(stack_db, event["id"]), 30, "event processed after Redis came back")
    assert stack_db.payments.find_one({"paymentId": intent_id})["status"] == "completed"
