"""The stale-work sweep finishes what a lost retry or a dead worker left behind, and nothing else.

The sweeps: docs/operations.md#sweeps-and-stuck-work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import RecordingJobs, mongo_deps
from usecases.sweeps import heal

LONG_AGO = timedelta(minutes=30)


def stored_event(db: Any, status: str, last_attempt: Any) -> dict[str, Any]:
    event = events.event("payment_intent.processing", {"id": events.new_id("pi"), "object": "payment_intent"})
    db.stripe_events.insert_one(
        {"_id": event["id"], "status": status, "payload": event, "lastAttemptAt": last_attempt, "attempts": 1}
    )
    return event


@pytest.fixture
def indexed(db: Any) -> Any:
    ensure_all_indexes(db)
    return db


def test_events_left_received_are_queued_again_and_others_are_not(indexed: Any) -> None:
    """Only an event still received long after its last attempt goes back to the queue, with its payload."""
    db = indexed
    stale = stored_event(db, "received", now() - LONG_AGO)
    stored_event(db, "received", now())  # its retry may still be on its way
    stored_event(db, "processed", now() - LONG_AGO)
    stored_event(db, "failed", now() - LONG_AGO)  # failed for good: for ops, not for the sweep
    deps = mongo_deps(db)
    report = heal(deps, older_than=timedelta(minutes=5))
    assert cast(RecordingJobs, deps.jobs).events == [stale] and report.events_requeued == 1


def test_a_completed_payment_never_activated_is_activated_once(indexed: Any) -> None:
    """A payment completed without its activation (a crash in between) is activated; one under review is not."""
    db = indexed
    orphan = {**pending_payment("pi_orphan"), "status": "completed", "updatedAt": now() - LONG_AGO}
    flagged = {
        **pending_payment("pi_flagged"),
        "status": "completed",
        "updatedAt": now() - LONG_AGO,
        "reviewRequired": {"reason": "amount_mismatch"},
    }
    fresh = {**pending_payment("pi_fresh"), "status": "completed"}
    db.payments.insert_many([orphan, flagged, fresh])
    deps = mongo_deps(db)
    assert heal(deps, older_than=timedelta(minutes=5)).payments_activated == 1
    assert heal(deps, older_than=timedelta(minutes=5)).payments_activated == 0
    assert db.payments.find_one({"paymentId": "pi_orphan"})["activatedAt"] is not None
    assert db.enrollments.find_one({"paymentId": orphan["_id"]})["status"] == "active"
    assert db.enrollments.count_documents({}) == 1
