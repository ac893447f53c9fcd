"""Reconcile's window and its settling of stuck payments, against MongoDB (issue 9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import FakeStripe, RecordingJobs, RecordingOutbox, mongo_deps
from usecases.inbox import process_event
from usecases.reconcile import reconcile, window_start


def test_the_window_reaches_back_to_the_oldest_unfinished_event(db: Any) -> None:
    """Three days, or further back to the oldest event not processed, less the overlap."""
    deps = mongo_deps(db)
    at = now()
    assert window_start(deps, at, timedelta(days=3), timedelta(hours=1)) == at - timedelta(days=3, hours=1)
    db.stripe_events.insert_one({"_id": "evt_old", "status": "failed", "receivedAt": at - timedelta(days=5)})
    db.stripe_events.insert_one({"_id": "evt_done", "status": "processed", "receivedAt": at - timedelta(days=9)})
    assert window_start(deps, at, timedelta(days=3), timedelta(hours=1)) == at - timedelta(days=5, hours=1)


def test_unfinished_events_are_queued_and_stuck_payments_follow_stripe(db: Any) -> None:
    """Events the inbox has not finished go back to the queue; a stuck payment takes Stripe's state."""
    ensure_all_indexes(db)
    old = now() - timedelta(hours=2)
    paid = {**pending_payment("pi_paid"), "updatedAt": old}
    dropped = {**pending_payment("pi_dropped"), "updatedAt": old}
    db.payments.insert_many([paid, dropped])
    intent = events.payment_intent("payment_intent.succeeded", "pi_paid", 49900, "INR", events.intent_metadata(paid))
    deps = mongo_deps(db, intents={"pi_paid": intent, "pi_dropped": {"id": "pi_dropped", "status": "canceled"}})
    done = events.event("payment_intent.succeeded", intent)
    lost = events.event("payment_intent.payment_failed", {"id": "pi_x"})
    cast(FakeStripe, deps.stripe).events += [done, lost]
    db.stripe_events.insert_one({"_id": done["id"], "status": "processed", "receivedAt": now()})
    report = reconcile(deps, now=now())
    assert (report.events_seen, report.events_enqueued, report.payments_checked, report.payments_moved) == (2, 1, 2, 2)
    assert [e["id"] for e in cast(RecordingJobs, deps.jobs).events] == [lost["id"]]
    assert db.payments.find_one({"paymentId": "pi_dropped"})["status"] == "canceled"
    settled = db.payments.find_one({"paymentId": "pi_paid"})
    assert settled["status"] == "completed" and settled["activatedAt"] is not None


def test_a_payment_reconcile_moved_is_not_moved_back_by_an_older_event(db: Any) -> None:
    """Reconcile records when it asked Stripe, as an event's time: a decline from before, delivered after, is older."""
    ensure_all_indexes(db)
    stuck = {**pending_payment("pi_stuck"), "status": "requires_action", "updatedAt": now() - timedelta(hours=2)}
    db.payments.insert_one(stuck)
    deps = mongo_deps(db, intents={"pi_stuck": {"id": "pi_stuck", "status": "processing"}})
    at = now()
    reconcile(deps, now=at)
    settled = db.payments.find_one({"paymentId": "pi_stuck"})
    assert (settled["status"], settled["lastEventAt"]) == ("processing", at)
    declined = events.payment_intent(
        "payment_intent.payment_failed", "pi_stuck", 49900, "INR", events.intent_metadata(stuck)
    )
    late = events.event("payment_intent.payment_failed", declined, created=int(at.timestamp()) - 60)
    assert process_event(late, deps) == "processed"
    assert db.payments.find_one({"paymentId": "pi_stuck"})["status"] == "processing"
    assert cast(RecordingOutbox, deps.outbox).calls == []
