"""How each Stripe event first arrived (``stripe_events.source``): by webhook or found by reconcile."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
from dramatiq import Message
from starlette.testclient import TestClient

from adapters.mongo import now
from adapters.queue import BrokerJobs, event_message, send
from adapters.settings import Settings
from ingress.composition import create_app
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import FakeStripe, mongo_deps
from tests.support import signed, wait_for
from usecases.reconcile import reconcile
from workers.composition import Worker

SECRET = "whsec_integration"


@pytest.fixture
def client(settings: Settings, worker: Worker, db: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings, broker=worker.broker, db=db)) as client:
        yield client


def succeeded(db: Any, intent_id: str) -> dict[str, Any]:
    payment = pending_payment(intent_id)
    db.payments.insert_one(payment)
    intent = events.payment_intent(
        "payment_intent.succeeded", intent_id, payment["amount"], payment["currency"], events.intent_metadata(payment)
    )
    return events.event("payment_intent.succeeded", intent)


def stored(db: Any, event_id: str, attempts: int = 1) -> dict[str, Any]:
    """The inbox record once the worker has recorded ``attempts`` deliveries and finished the event."""
    return wait_for(
        lambda: db.stripe_events.find_one(
            {"_id": event_id, "status": "processed", "attempts": {"$gte": attempts}}, {"source": 1}
        ),
        what=f"{event_id} processed after {attempts} deliveries",
    )


def reconcile_through(worker: Worker, db: Any, *found: dict[str, Any]) -> None:
    """Reconcile as it runs, its Stripe listing ``found`` and its jobs on the worker's broker."""
    deps = dataclasses.replace(mongo_deps(db), jobs=BrokerJobs(worker.broker))
    cast(FakeStripe, deps.stripe).events += found
    reconcile(deps, now=now(), since=now() - timedelta(days=1))


def test_a_webhook_delivery_is_recorded_as_webhook(client: TestClient, db: Any) -> None:
    event = succeeded(db, "pi_by_webhook")
    body, headers = signed(event, SECRET)
    assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    assert stored(db, event["id"])["source"] == "webhook"


def test_an_event_found_by_reconcile_is_recorded_as_reconcile(worker: Worker, db: Any) -> None:
    event = succeeded(db, "pi_by_reconcile")
    reconcile_through(worker, db, event)
    assert stored(db, event["id"])["source"] == "reconcile"


def test_the_first_arrival_wins(client: TestClient, worker: Worker, db: Any) -> None:
    """A webhook after reconcile found the event, and reconcile after a webhook: the first one's source stays."""
    found_first, pushed_first = succeeded(db, "pi_found_first"), succeeded(db, "pi_pushed_first")
    body, headers = signed(pushed_first, SECRET)
    assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    reconcile_through(worker, db, found_first)
    stored(db, pushed_first["id"])
    stored(db, found_first["id"])
    # Both again the other way: recorded as second deliveries (reconcile queues what is not finished,
    # so the already-processed event goes through the queue as reconcile's message directly).
    send(worker.broker, event_message(pushed_first, "reconcile"))
    body, headers = signed(found_first, SECRET)
    assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    assert stored(db, pushed_first["id"], attempts=2)["source"] == "webhook"
    assert stored(db, found_first["id"], attempts=2)["source"] == "reconcile"


def test_a_message_queued_before_sources_existed_counts_as_webhook(worker: Worker, db: Any) -> None:
    """An old message: no keyword arguments at all, signed as every message was before."""
    event = succeeded(db, "pi_old_message")
    old = Message(
        queue_name="stripe-events", actor_name="process_stripe_event", args=(event,), kwargs={}, options={}
    )
    old = dataclasses.replace(old, message_id=event["id"])
    send(worker.broker, old)
    assert stored(db, event["id"])["source"] == "webhook"


def test_only_reconcile_messages_carry_a_source() -> None:
    """The webhook's message is as it always was (no keyword arguments); reconcile's names itself, signed."""
    event = events.event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})
    assert event_message(event).kwargs == {}
    assert event_message(event, "reconcile").kwargs == {"source": "reconcile"}
