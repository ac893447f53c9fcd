"""Events Stripe signed but that make no sense fail at once: one attempt, the field named, nothing changed.

Each event goes the whole way: signed and posted to the ingress, queued, run by a real worker.
Retrying cannot make such an event right, so it must not wait an hour of backoff in the queue
with the inbox event left ``received``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.mongo import now
from adapters.settings import Settings
from ingress.composition import create_app
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.support import signed, wait_for
from workers.composition import Worker

SECRET = "whsec_integration"
AMOUNT = 79900


@pytest.fixture
def client(settings: Settings, worker: Worker, db: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings, broker=worker.broker, db=db)) as client:
        yield client


def intent_event(payment: dict[str, Any], event_type: str, **changes: Any) -> dict[str, Any]:
    intent = events.payment_intent(
        event_type, payment["paymentId"], payment["amount"], payment["currency"], events.intent_metadata(payment)
    )
    intent.update(changes)
    return events.event(event_type, intent)


def created_far_ahead(payment: dict[str, Any]) -> dict[str, Any]:
    return {**intent_event(payment, "payment_intent.succeeded"), "created": 10**18}


def created_before_1970(payment: dict[str, Any]) -> dict[str, Any]:
    return {**intent_event(payment, "payment_intent.succeeded"), "created": -(10**15)}


def refund_of_abc(payment: dict[str, Any]) -> dict[str, Any]:
    refund = events.fixture("refund")
    refund.update(id=events.new_id("re"), amount="abc", payment_intent=payment["paymentId"], currency="inr")
    return events.event("refund.created", refund)


def error_boom(payment: dict[str, Any]) -> dict[str, Any]:
    return intent_event(payment, "payment_intent.payment_failed", last_payment_error="boom")


def amount_as_text(payment: dict[str, Any]) -> dict[str, Any]:
    """An older payload (no ``amount_received``) whose amount is the payment's, as a string."""
    event = intent_event(payment, "payment_intent.succeeded", amount=str(AMOUNT))
    del event["data"]["object"]["amount_received"]
    return event


def store(db: Any, paid: bool) -> dict[str, Any]:
    payment = pending_payment(events.new_id("pi"), amount=AMOUNT)
    if paid:
        payment.update(status="completed", paidAt=now(), chargeId=events.new_id("ch"))
    db.payments.insert_one(payment)
    return payment


CASES: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], bool, str]] = [
    ("created 10**18", created_far_ahead, False, "created: "),
    ("created -10**15", created_before_1970, False, "created: "),
    ("refund amount 'abc'", refund_of_abc, True, "data.object.amount: expected an integer, got str"),
    ("last_payment_error 'boom'", error_boom, False, "data.object.last_payment_error: expected an object, got str"),
    ("intent amount '79900'", amount_as_text, False, "data.object.amount: expected an integer, got str"),
]


@pytest.mark.parametrize(("build", "paid", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_signed_event_that_makes_no_sense_fails_at_once(
    client: TestClient, db: Any, build: Callable[[dict[str, Any]], dict[str, Any]], paid: bool, named: str
) -> None:
    """One attempt, dead at once; job_failures and the inbox name the field; payment and enrollments untouched."""
    payment = store(db, paid)
    before = db.payments.find_one({"_id": payment["_id"]})
    event = build(payment)
    body, headers = signed(event, SECRET)
    assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200

    failure = wait_for(lambda: db.job_failures.find_one({"messageId": event["id"]}), 15, "the failure record")
    assert (failure["attempts"], failure["state"], failure["eventId"]) == (1, "dead", event["id"])
    assert failure["error"].startswith("PermanentError: ") and named in failure["error"], failure["error"]
    inbox = db.stripe_events.find_one({"_id": event["id"]})
    assert inbox is not None and inbox["status"] == "failed" and named in inbox["error"], inbox
    assert db.payments.find_one({"_id": payment["_id"]}) == before
    assert db.enrollments.count_documents({}) == 0
    assert db.notifications.count_documents({}) == 0


def test_the_inbox_records_a_rejected_delivery_once_and_never_undoes_a_finished_event(db: Any) -> None:
    """reject: failed with the reason and payload; counted again on redelivery; a processed event stays processed."""
    from adapters.inbox import MongoInbox

    inbox = MongoInbox(db)
    event = created_far_ahead(pending_payment(events.new_id("pi")))
    inbox.reject(event["id"], event, "created: out of range")
    inbox.reject(event["id"], event, "created: out of range")
    doc = db.stripe_events.find_one({"_id": event["id"]})
    assert (doc["status"], doc["error"], doc["attempts"], doc["type"]) == (
        "failed",
        "created: out of range",
        2,
        "payment_intent.succeeded",
    )
    assert doc["payload"]["created"] == 10**18

    db.stripe_events.insert_one({"_id": "evt_done", "status": "processed", "attempts": 1})
    inbox.reject("evt_done", {"id": "evt_done"}, "does not parse any more")
    assert db.stripe_events.find_one({"_id": "evt_done"}) == {"_id": "evt_done", "status": "processed", "attempts": 1}

    huge = {**event, "id": "evt_huge", "created": 10**20}  # beyond what BSON holds: kept without its payload
    inbox.reject("evt_huge", huge, "created: out of range")
    doc = db.stripe_events.find_one({"_id": "evt_huge"})
    assert doc["status"] == "failed" and "payload" not in doc
