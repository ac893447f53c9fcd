"""What the worker spends per ``payment_intent.succeeded`` event, in MongoDB commands and Redis round trips.

Issue 11's targets, as counts (never timings) so the test holds on any machine: the events
actor's own work on one succeeded event (inbox receive and finish, the payment's conditional
move, the enrollment's activation and its record, the two notifications) takes at most six
MongoDB commands, and its Redis commands (and round trips) are those of a no-op Dramatiq actor
on the same broker plus one (the one message that carries both emails). The emails themselves are sent by
another actor, whose queue this worker does not consume here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest

from adapters.indexes import ensure_all_indexes
from adapters.queue import EMAILS_ACTOR, EMAILS_QUEUE, STRIPE_EVENTS_QUEUE, event_message, send
from adapters.settings import Settings
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.integration.counting import Counts, counting, install
from tests.support import queued_messages, wait_for
from workers.composition import Worker, build_worker

NOOP_QUEUE = "noop"
#: Messages per measurement: enough that a stray call shows as a fraction.
ROUNDS = 8

#: The events actor's MongoDB commands for one succeeded event, in order (``find_one_and_update``
#: is ``findAndModify``; ``update_one`` and ``bulk_write`` of updates are ``update``).
SUCCEEDED = [
    "findAndModify stripe_events",  # inbox: record the delivery, learn its status
    "findAndModify payments",  # find the payment and complete it, in one conditional write
    "findAndModify enrollments",  # claim the activation (upserting a new enrollment)
    "update payments",  # record the activation on the payment
    "update notifications",  # both emails' notifications, one bulk write
    "update stripe_events",  # inbox: processed
]


@dataclass
class Counted:
    wired: Worker
    running: dramatiq.Worker


@pytest.fixture
def counted(settings: Settings, db: Any) -> Iterator[Counted]:
    """A real worker on the events queue and a no-op actor's queue (not the emails queue)."""
    install()  # before the worker's MongoDB client exists
    ensure_all_indexes(db)
    wired = build_worker(settings)
    wired.broker.flush_all()
    dramatiq.actor(actor_name="noop", queue_name=NOOP_QUEUE, broker=wired.broker)(lambda: None)
    running = dramatiq.Worker(
        wired.broker, queues={STRIPE_EVENTS_QUEUE, NOOP_QUEUE}, worker_timeout=50, worker_threads=2
    )
    running.start()
    yield Counted(wired, running)
    running.stop()
    wired.broker.flush_all()
    wired.close()


def succeeded_event(db: Any, n: int, *, emails: bool) -> dict[str, Any]:
    """A stored pending payment (with or without email addresses) and the event that pays it."""
    doc = pending_payment(f"pi_count_{n}_{int(emails)}")
    if not emails:
        doc.update(customerEmail=None, specialistEmail=None)
    db.payments.insert_one(doc)
    intent = events.payment_intent(
        "payment_intent.succeeded", doc["paymentId"], doc["amount"], doc["currency"], events.intent_metadata(doc)
    )
    return events.event("payment_intent.succeeded", intent)


def process(counted: Counted, db: Any, batch: list[dict[str, Any]]) -> None:
    for event in batch:
        send(counted.wired.broker, event_message(event))
    ids = [event["id"] for event in batch]

    def done() -> bool:
        return bool(db.stripe_events.count_documents({"_id": {"$in": ids}, "status": "processed"}) == len(ids))

    wait_for(done, what="the events processed")
    # The ack follows the inbox's last write: wait for the queue to be empty as well.
    wait_for(lambda: counted.wired.broker.do_qsize(STRIPE_EVENTS_QUEUE) == 0, what="the events acked")


def noop_round_trips(counted: Counted) -> tuple[float, float]:
    """Redis round trips and commands Dramatiq's worker threads spend per message of a no-op actor (its ack)."""
    broker = counted.wired.broker
    noop = broker.get_actor("noop")
    send(broker, noop.message())
    wait_for(lambda: broker.do_qsize(NOOP_QUEUE) == 0, what="the warm-up no-op")
    with counting() as counts:
        for _ in range(ROUNDS):
            send(broker, noop.message())
        wait_for(lambda: broker.do_qsize(NOOP_QUEUE) == 0, what="the no-ops")
    workers = Counts.by_workers
    return len(workers(counts.redis_round_trips)) / ROUNDS, len(workers(counts.redis_commands)) / ROUNDS


def measure(counted: Counted, db: Any, *, emails: bool) -> Counts:
    process(counted, db, [succeeded_event(db, 0, emails=emails)])  # warm-up: connections, scripts
    batch = [succeeded_event(db, n, emails=emails) for n in range(1, ROUNDS + 1)]
    with counting() as counts:
        process(counted, db, batch)
    return counts


def per_event(calls: list[str]) -> Counter[str]:
    return Counter({name: count / ROUNDS for name, count in Counter(calls).items()})


def test_a_succeeded_event_takes_six_mongodb_commands_and_one_redis_command_more_than_a_noop(
    counted: Counted, db: Any, settings: Settings
) -> None:
    noop, noop_commands = noop_round_trips(counted)
    counts = measure(counted, db, emails=True)
    mongo = Counts.by_workers(counts.mongo)
    assert per_event(mongo) == per_event(SUCCEEDED * ROUNDS), f"per event: {per_event(mongo)}"
    round_trips = len(Counts.by_workers(counts.redis_round_trips)) / ROUNDS
    commands = len(Counts.by_workers(counts.redis_commands)) / ROUNDS
    redis = per_event(Counts.by_workers(counts.redis_commands))
    assert round_trips <= noop + 1, f"{round_trips} Redis round trips per event, {noop} per no-op: {redis}"
    assert commands <= noop_commands + 1, f"{commands} Redis commands per event, {noop_commands} per no-op: {redis}"
    # One message per event carries both emails, signed where the outbox made it.
    queued = queued_messages(counted.wired.broker.client, EMAILS_QUEUE)
    assert sorted(len(m.args) for m in queued) == [2] * (ROUNDS + 1)
    assert all(counted.wired.broker.signer.verifies(m) for m in queued)


def test_without_emails_a_succeeded_event_takes_five_mongodb_commands(counted: Counted, db: Any) -> None:
    noop, _ = noop_round_trips(counted)
    counts = measure(counted, db, emails=False)
    mongo = Counts.by_workers(counts.mongo)
    expected = [name for name in SUCCEEDED if name != "update notifications"]
    assert per_event(mongo) == per_event(expected * ROUNDS), f"per event: {per_event(mongo)}"
    assert len(Counts.by_workers(counts.redis_round_trips)) / ROUNDS <= noop


def test_a_worker_takes_every_other_actor_s_messages_before_the_emails(counted: Counted) -> None:
    """Of the messages one process holds, events (activation) and refunds go first: a burst's
    emails wait for its enrollments, never the other way round (the open loop of ``make bench``)."""
    broker = counted.wired.broker
    emails = broker.get_actor(EMAILS_ACTOR).priority
    others = {name: broker.get_actor(name).priority for name in broker.get_declared_actors() - {EMAILS_ACTOR}}
    assert others and all(priority < emails for priority in others.values()), (emails, others)
