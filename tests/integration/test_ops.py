"""Ops on failed jobs (issue 9): list, filter, show, replay at a rate, purge, audit; a killed replay loses nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from adapters.deps import build_ops
from adapters.mongo import now
from adapters.queue import STRIPE_EVENTS_QUEUE, Broker, event_message, notification_message, send
from adapters.settings import Settings
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import FakeStripe, RecordingJobs, mongo_deps
from tests.support import wait_for
from usecases import ops
from usecases.inbox import process_event
from usecases.ports import FailureSelection, FailureStore, Operator, OpsDeps, StoredFailure
from usecases.reconcile import reconcile
from workers.composition import Worker

ROOT = Path(__file__).resolve().parents[2]
WHO = Operator("test", "tests")
NOT_YET = "not found yet"


def failing_events(worker: Worker, count: int) -> list[dict[str, Any]]:
    """Events of ours whose payments are not stored: retried, then dead (RetryLater). Their payments, to store later."""
    payments = []
    for _ in range(count):
        doc = pending_payment(events.new_id("pi"))
        intent = events.payment_intent(
            "payment_intent.succeeded", doc["paymentId"], doc["amount"], "INR", events.intent_metadata(doc)
        )
        worker.deps.jobs.enqueue_event(events.event("payment_intent.succeeded", intent))
        payments.append(doc)
    return payments


def failing_emails(worker: Worker, db: Any, count: int) -> None:
    """Notifications of a template that does not exist: failed for good at once (PermanentError)."""
    for i in range(count):
        key = f"broken-{i}"
        db.notifications.insert_one({"dedupeKey": key, "template": "no_such_template", "recipient": "x@example.test",
                                     "context": {}, "status": "pending", "attempts": 0})  # fmt: skip
        send(worker.broker, notification_message(key))


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fifty(worker: Worker, db: Any, settings: Settings) -> tuple[list[dict[str, Any]], OpsDeps, Sleeps]:
    """50 failed jobs across two actors: 20 events (retries exhausted), 30 emails (failed at once)."""
    payments = failing_events(worker, 20)
    failing_emails(worker, db, 30)
    wait_for(lambda: db.job_failures.count_documents({}) == 50, 60, "50 failure records")
    sleeps = Sleeps()
    return payments, dataclasses.replace(build_ops(settings, db, worker.broker), sleep=sleeps), sleeps


def test_fifty_failures_are_listed_filtered_shown_replayed_and_purged(
    fifty: tuple[list[dict[str, Any]], OpsDeps, Sleeps], db: Any
) -> None:
    """Counts right at every step; the 20 events replayed at a rate finish their work; two audit records."""
    payments, deps, sleeps = fifty
    first, cursor = deps.failures.page(FailureSelection(), 30, None)
    rest, end = deps.failures.page(FailureSelection(), 30, cursor)
    assert (len(first), len(rest), end) == (30, 20, None)
    assert len(deps.failures.page(FailureSelection(actor="send_notification"), 100, None)[0]) == 30
    events_only = FailureSelection(error=NOT_YET.upper())
    [shown, *_] = deps.failures.page(events_only, 100, None)[0]
    detail = deps.failures.get(shown["id"])
    assert detail is not None and detail["attempts"] == 3 and "RetryLater" in detail["traceback"]
    assert detail["eventType"] == "payment_intent.succeeded" and detail["message"]["args"][0]["id"] == detail["eventId"]
    assert detail["paymentId"] in {p["paymentId"] for p in payments}
    assert deps.queues.depths()["stripe-events"]["dead"] == 20

    dry = ops.replay(events_only, deps, who=WHO)
    assert (dry.count, dry.dry_run, len(dry.sample), db.job_failures.count_documents({"state": "replayed"})) == (
        20,
        True,
        5,
        0,
    )
    db.payments.insert_many(payments)  # what the events were missing
    result = ops.replay(events_only, deps, who=WHO, dry_run=False, rate=40)
    assert (result.done, result.refused, sleeps) == (20, 0, [1 / 40] * 19)  # between two messages
    ids = [p["paymentId"] for p in payments]
    done = {"paymentId": {"$in": ids}, "activatedAt": {"$ne": None}}
    wait_for(lambda: db.payments.count_documents(done) == 20, 30, "the replayed events' work")
    assert ops.replay(events_only, deps, who=WHO, dry_run=False).count == 0  # replayed ones are done

    purged = ops.purge(FailureSelection(), deps, who=WHO, dry_run=False)
    assert purged.done == 30 and db.job_failures.count_documents({"state": "purged"}) == 30
    dead = {q: d["dead"] for q, d in deps.queues.depths().items()}
    assert dead == {"emails": 0, "refunds": 0, "stripe-events": 0, "doctor": 0}  # the worker's broker has the probe's
    audit = [(a["action"], a["count"], a["who"]) for a in db.ops_audit.find({"state": "finished"}).sort("at", 1)]
    assert audit == [("replay", 20, "test"), ("replay", 0, "test"), ("purge", 30, "test")]  # every real run
    assert db.ops_audit.count_documents({"state": "started"}) == 3  # and each one's start


def test_a_forged_message_is_never_replayed(worker: Worker, db: Any, settings: Settings) -> None:
    """A failure of a message the project never signed stays dead: replaying would make it trusted."""
    from dramatiq.brokers.redis import RedisBroker

    from adapters.queue import STRIPE_EVENTS_QUEUE, event_message

    forger = RedisBroker(url=settings.redis_url, middleware=[])
    forger.declare_queue(STRIPE_EVENTS_QUEUE)
    forger.enqueue(event_message(events.event("payment_intent.succeeded", {"id": "pi_forged"})))
    forger.close()
    wait_for(lambda: db.job_failures.find_one({"error": {"$regex": "^Unsigned"}}), 20, "the forged message's failure")
    result = ops.replay(FailureSelection(), build_ops(settings, db, worker.broker), who=WHO, dry_run=False)
    assert (result.done, result.refused) == (0, 1)
    assert db.job_failures.find_one()["state"] == "dead"


def cli_env(settings: Settings) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": settings.redis_url,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "STRIPE_SECRET_KEY": settings.stripe_secret_key,
        "STRIPE_WEBHOOK_SECRET": ",".join(settings.stripe_webhook_secrets),
        "JWT_SECRET": settings.jwt_secret,
    }


def test_a_replay_killed_half_way_loses_nothing_and_does_nothing_twice(
    fifty: tuple[list[dict[str, Any]], OpsDeps, Sleeps], db: Any, settings: Settings
) -> None:
    """SIGKILL during a rate-limited replay by the CLI; a second replay finishes; every payment activated once."""
    payments, _, _ = fifty
    db.payments.insert_many(payments)
    command = [sys.executable, "-m", "payments_ops", "failures", "replay", "--error", NOT_YET, "--rate", "4", "--yes"]
    replay = subprocess.Popen(
        command, env=cli_env(settings), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: db.job_failures.count_documents({"state": "replayed"}) >= 3, 30, "a few replays")
        replay.send_signal(signal.SIGKILL)
    finally:
        replay.wait(10)
    half = db.job_failures.count_documents({"state": "replayed"})
    assert 3 <= half < 20
    # A record the kill caught between its claim and its mark stays claimed until its lease ends.
    assert db.job_failures.count_documents({"state": "replaying"}) <= 1
    db.job_failures.update_many({"state": "replaying"}, {"$set": {"claimUntil": now() - timedelta(seconds=1)}})
    finish = subprocess.run(
        [*command[:-3], "--yes", "--json"], env=cli_env(settings), cwd=ROOT, capture_output=True, text=True
    )
    assert finish.returncode == 0, finish.stderr
    assert json.loads(finish.stdout)["done"] == 20 - half
    ids = [p["paymentId"] for p in payments]
    wait_for(lambda: db.payments.count_documents({"paymentId": {"$in": ids}, "activatedAt": {"$ne": None}}) == 20, 30)
    assert db.enrollments.count_documents({"paymentId": {"$in": [p["_id"] for p in payments]}}) == 20
    for doc in db.payments.find({"paymentId": {"$in": ids}}):
        assert [h["status"] for h in doc["statusHistory"]].count("completed") == 1


def test_the_cli_lists_and_shows_with_exit_codes(
    fifty: tuple[list[dict[str, Any]], OpsDeps, Sleeps], settings: Settings
) -> None:
    """queues and failures list answer 0 (JSON with --json), an unknown id 1, a malformed one or bad usage 2."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "payments_ops", *args], env=cli_env(settings), cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip

    listed = cli("--json", "failures", "list", "--actor", "send_notification", "--limit", "100")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["items"]) == 30
    queues = cli("--json", "queues")
    assert queues.returncode == 0 and json.loads(queues.stdout)["emails"]["dead"] == 30
    assert "queue" in cli("queues").stdout.splitlines()[0]  # an aligned table for people
    assert cli("failures", "show", "0" * 24).returncode == 1
    assert cli("failures", "show", "not-an-id").returncode == 2
    assert cli("failures", "frobnicate").returncode == 2
    dry = cli("failures", "purge")
    assert dry.returncode == 0 and "dry run: 50 failures would be purged" in dry.stdout


# Each record claimed before it is acted on ----------------------------------------------------------------------

ANA, BEN = Operator("Ana", "tests"), Operator("Ben", "tests")
EVENTS_READY = "dramatiq:stripe-events"


def dead_event_job(db: Any, broker: Broker) -> dict[str, Any]:
    """A Stripe event whose job failed for good, as the worker leaves it: ``failed`` in the inbox, a dead record."""
    event = events.event("payment_intent.succeeded", {"id": events.new_id("pi"), "object": "payment_intent"})
    message = broker.signer.sign(event_message(event))
    earlier = now() - timedelta(hours=1)
    db.stripe_events.insert_one({"_id": event["id"], "type": event["type"], "status": "failed", "payload": event,
                                 "receivedAt": earlier, "lastAttemptAt": earlier})  # fmt: skip
    db.job_failures.insert_one({"queue": STRIPE_EVENTS_QUEUE, "actor": message.actor_name, "eventId": event["id"],
                                "message": message.encode().decode(), "error": "boom", "attempts": 3,
                                "state": "dead", "lastFailedAt": earlier})  # fmt: skip
    return event


class SelectThen:
    """Failure records whose selection is followed, before the run acts on it, by ``then`` (another run)."""

    def __init__(self, inner: FailureStore, then: Callable[[], object]) -> None:
        self.inner, self.then = inner, then

    def select(self, selection: FailureSelection) -> list[StoredFailure]:
        rows = self.inner.select(selection)
        self.then()
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def racing(deps: OpsDeps, then: Callable[[], object]) -> OpsDeps:
    return dataclasses.replace(deps, failures=cast(FailureStore, SelectThen(deps.failures, then)))


def test_a_replay_racing_a_purge_acts_once(db: Any, broker: Broker, settings: Settings) -> None:
    """Ben purges what Ana's replay selected before it acts: her replay enqueues nothing, the record stays purged."""
    dead_event_job(db, broker)
    deps = build_ops(settings, db, broker)
    purge_first = racing(deps, lambda: ops.purge(FailureSelection(), deps, who=BEN, dry_run=False))
    result = ops.replay(FailureSelection(), purge_first, who=ANA, dry_run=False)
    assert (result.done, result.skipped, broker.client.llen(EVENTS_READY)) == (0, 1, 0)
    record = db.job_failures.find_one()
    assert (record["state"], record["purgedBy"], "replayedBy" in record) == ("purged", "Ben", False)


def test_two_replays_of_one_failure_enqueue_it_once(db: Any, broker: Broker, settings: Settings) -> None:
    """Ana and Ben replay the same failure at once: one fresh copy is queued, and the record says who did it."""
    dead_event_job(db, broker)
    deps = build_ops(settings, db, broker)
    ben_first = racing(deps, lambda: ops.replay(FailureSelection(), deps, who=BEN, dry_run=False))
    result = ops.replay(FailureSelection(), ben_first, who=ANA, dry_run=False)
    assert (result.done, result.skipped, broker.client.llen(EVENTS_READY)) == (0, 1, 1)
    assert (db.job_failures.find_one()["state"], db.job_failures.find_one()["replayedBy"]) == ("replayed", "Ben")
    finished = [(a["who"], a["count"]) for a in db.ops_audit.find({"state": "finished"}).sort("at", 1)]
    assert finished == [("Ben", 1), ("Ana", 0)]


def test_a_purged_event_is_never_queued_again(db: Any, broker: Broker, settings: Settings) -> None:
    """Purging a poison event's job finishes it in the inbox: stuck-work requeue, reconcile and redelivery skip it."""
    event = dead_event_job(db, broker)
    deps = build_ops(settings, db, broker)
    assert ops.purge(FailureSelection(), deps, who=ANA, dry_run=False).done == 1
    assert db.stripe_events.find_one({"_id": event["id"]})["status"] == "purged"
    assert ops.stuck(deps, timedelta(0))["unfinishedEvents"] == []
    assert ops.requeue_stuck(deps, who=ANA, older_than=timedelta(0)) == {"messagesRequeued": 0, "eventsRequeued": 0}
    core = mongo_deps(db)
    cast(FakeStripe, core.stripe).events.append(event)
    assert reconcile(core, now=now()).events_enqueued == 0
    assert process_event(event, core) == "purged"  # Stripe's own redelivery
    assert (broker.client.llen(EVENTS_READY), cast(RecordingJobs, core.jobs).events) == (0, [])


def test_a_claim_left_by_a_crashed_run_is_taken_back_after_its_lease(
    db: Any, broker: Broker, settings: Settings
) -> None:
    """A run died holding two records: the one whose lease ran out is replayed; the one still leased is not touched."""
    dead_event_job(db, broker)
    dead_event_job(db, broker)
    expired, leased = [d["_id"] for d in db.job_failures.find().sort("_id", 1)]
    db.job_failures.update_one({"_id": expired}, {"$set": {"state": "replaying", "claimUntil": now() - timedelta(1)}})
    db.job_failures.update_one({"_id": leased}, {"$set": {"state": "purging", "claimUntil": now() + timedelta(1)}})
    result = ops.replay(FailureSelection(), build_ops(settings, db, broker), who=ANA, dry_run=False)
    assert (result.count, result.done, broker.client.llen(EVENTS_READY)) == (1, 1, 1)
    assert [d["state"] for d in db.job_failures.find().sort("_id", 1)] == ["replayed", "purging"]
