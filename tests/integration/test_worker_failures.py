"""Worker retry policy: PermanentError straight to the dead letters, exhausted retries recorded.

What ops do with them: docs/operations.md#failed-jobs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker

from adapters.mongo import now
from adapters.queue import STRIPE_EVENTS_QUEUE, event_message, send
from adapters.settings import Settings
from adapters.signing import Signer
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.support import queued_messages, wait_for
from workers.composition import Worker

DEAD = f"{STRIPE_EVENTS_QUEUE}.XQ"


def dead_ids(wired: Worker) -> list[str]:
    return [m.message_id for m in queued_messages(wired.broker.client, DEAD)]


def test_a_permanent_error_goes_to_the_dead_letters_with_its_reason(worker: Worker, db: Any) -> None:
    """An event that can never be handled is dead-lettered at once and its failure recorded."""
    event = events.event("payment_intent.succeeded", {"object": "payment_intent"})
    send(worker.broker, event_message(event))
    failure = wait_for(lambda: db.job_failures.find_one({"messageId": event["id"]}), what="failure record")
    wait_for(lambda: dead_ids(worker) == [event["id"]], what="dead letter")
    assert failure["error"].startswith("PermanentError: event") and "data.object.id: expected" in failure["error"]
    assert (failure["attempts"], failure["state"], failure["eventType"]) == (1, "dead", "payment_intent.succeeded")
    assert "Traceback" in failure["traceback"] and failure["queue"] == STRIPE_EVENTS_QUEUE


def test_exhausted_retries_record_the_final_failure(worker: Worker, db: Any) -> None:
    """An event that keeps failing is retried max_retries times, then recorded with the last traceback."""
    metadata = {"source": events.SOURCE}
    intent = events.payment_intent("payment_intent.succeeded", events.new_id("pi"), 100, "INR", metadata)
    event = events.event("payment_intent.succeeded", intent)
    send(worker.broker, event_message(event))
    failure = wait_for(lambda: db.job_failures.find_one({"messageId": event["id"]}), 20, "failure record")
    assert failure["attempts"] == 3  # the first try and RETRY_MAX_RETRIES=2 retries
    assert "RetryLater" in failure["error"] and "RetryLater" in failure["traceback"]
    assert failure["firstFailedAt"] < failure["lastFailedAt"]
    wait_for(lambda: dead_ids(worker) == [event["id"]], what="dead letter")
    inbox = db.stripe_events.find_one({"_id": event["id"]})
    assert (inbox["attempts"], inbox["status"]) == (3, "failed")  # for ops now, not for the stale-work sweep
    assert "RetryLater" in inbox["error"]


def stored_succeeded_event(db: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pending payment of ours and a succeeded event that would activate it if it were acted on."""
    payment = pending_payment(events.new_id("pi"))
    db.payments.insert_one(payment)
    intent = events.payment_intent(
        "payment_intent.succeeded", payment["paymentId"], payment["amount"], "INR", events.intent_metadata(payment)
    )
    return payment, events.event("payment_intent.succeeded", intent)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "carries no signature"),
        (b"not the project's key", "does not verify"),
    ],
)
def test_a_message_the_project_did_not_sign_is_dead_lettered_unexecuted(
    worker: Worker, db: Any, settings: Settings, key: bytes | None, reason: str
) -> None:
    """An event written into Redis without the project's HMAC activates nothing and is recorded with the reason."""
    payment, event = stored_succeeded_event(db)
    forger = RedisBroker(url=settings.redis_url, middleware=[])
    forger.declare_queue(STRIPE_EVENTS_QUEUE)
    message = event_message(event)
    if key is not None:
        Signer((key,)).sign(message)
    try:
        forger.enqueue(message)
    finally:
        forger.close()
    failure = wait_for(lambda: db.job_failures.find_one({"messageId": event["id"]}), what="failure record")
    wait_for(lambda: dead_ids(worker) == [event["id"]], what="dead letter")
    assert failure["error"].startswith("Unsigned: message") and reason in failure["error"]
    assert failure["attempts"] == 1
    assert db.stripe_events.find_one({"_id": event["id"]}) is None  # never reached the inbox
    assert db.payments.find_one({"_id": payment["_id"]})["status"] == "pending"
    assert db.enrollments.count_documents({}) == 0


def test_an_event_whose_retry_was_lost_is_finished_by_the_sweep(worker: Worker, db: Any) -> None:
    """An inbox event left received (its message gone from Redis) is queued again by the worker's sweep."""
    payment, event = stored_succeeded_event(db)
    long_ago = now() - timedelta(minutes=5)
    db.stripe_events.insert_one(
        {"_id": event["id"], "status": "received", "payload": event, "attempts": 1, "lastAttemptAt": long_ago}
    )
    wait_for(lambda: db.stripe_events.find_one({"_id": event["id"], "status": "processed"}), 20, "the sweep")
    after = db.payments.find_one({"_id": payment["_id"]})
    assert after["status"] == "completed" and after["activatedAt"] is not None
