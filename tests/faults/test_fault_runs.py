"""Fault runs: signed events for fresh payments streamed while one part of the stack is broken (slow).

Each run pays ``FAULT_PAYMENTS`` payments at the local Stripe (refunding a tenth of them
through the API once activated) and delivers every event three times (localstripe's webhook and
two shuffled copies from 8 senders, a decline after its later success), strikes its fault
mid-stream, waits until nothing is left in flight, then checks every payment against Stripe and
counts activations, enrollments, refunds and emails (README "Fault suite").
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from devstack.stack import Stack
from tests.faults.checks import Mailbox
from tests.faults.conftest import FAULT_PAYMENTS
from tests.faults.harness import REDELIVERY_LIMIT, FaultRun, assert_clean, run_fault
from tests.faults.report import Row
from tests.faults.stripe_proxy import StripeFront
from tests.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

Run = Callable[..., Row]

#: Seconds Redis stays down (the launcher's supervisor restarts a dead part after 1 s, then backs off).
REDIS_DOWN = 3.0


@pytest.fixture
def run(
    fault_stack: Stack,
    fault_db: Any,
    fault_redis: redis.Redis,
    mailbox: Mailbox,
    fault_rows: list[Row],
    stripe_front: StripeFront,
) -> Run:
    """Start a fault run named for the table; returns its row."""

    def start(fault: str, action: Callable[[FaultRun], None], **options: Any) -> Row:
        row = Row(fault, FAULT_PAYMENTS)
        fault_rows.append(row)
        replayed = stripe_front.replayed
        try:
            return run_fault(fault_stack, fault_db, fault_redis, mailbox, row, action, **options)
        finally:
            row.notes.append(f"{stripe_front.replayed - replayed} Stripe requests answered by idempotency key")

    return start


def part(run: FaultRun, name: str) -> Any:
    return run.stack.children[name]


def sigkill(run: FaultRun, name: str) -> None:
    child = part(run, name)
    child.signal(signal.SIGKILL)
    wait_for(lambda: not child.alive(), 10, f"{name} to die")


def test_the_delivery_pattern_alone_settles_with_every_effect_once(run: Run) -> None:
    """No part broken: three shuffled concurrent deliveries of each event, declines after successes, effects once."""
    assert_clean(run("none (the delivery pattern alone)", lambda _: None))


def in_flight(client: Any) -> dict[str, int]:
    """Messages each consumer holds (Dramatiq's ack sets, one per worker process and queue; empty ones vanish)."""
    return {key.decode(): int(client.scard(key)) for key in client.scan_iter("dramatiq:__acks__.*")}


def kill_worker(fault: FaultRun) -> tuple[int, float]:
    """SIGKILL the worker, start it again; return the messages it held and the seconds until they were back."""
    with contextlib.suppress(AssertionError):  # strike while it holds messages if it soon does; strike anyway
        wait_for(lambda: sum(in_flight(fault.redis).values()), 5, "the worker holding messages")
    sigkill(fault, "worker")
    killed_at = time.monotonic()
    fault.kills.append(datetime.now(UTC))
    held = in_flight(fault.redis)  # only the dead worker consumes until the new one starts
    fault.stack.restart_part("worker")
    # Dramatiq deletes a dead worker's ack set once it has put every message in it back in its queue.
    back = lambda: not any(fault.redis.exists(key) for key in held)  # noqa: E731
    wait_for(back, REDELIVERY_LIMIT, "the killed worker's messages back in their queues")
    return sum(held.values()), time.monotonic() - killed_at


def test_a_worker_killed_three_times_mid_stream_loses_and_repeats_nothing(run: Run) -> None:
    """SIGKILL the worker three times: its in-flight messages come back within a minute and run once in effect."""

    def kill_thrice(fault: FaultRun) -> None:
        for strike in (1, 2, 3):
            fault.stream.wait_sent(strike / 4)
            held, back_in = kill_worker(fault)
            fault.note(f"kill {strike}: {held} messages in flight, back in {back_in:.1f} s")

    assert_clean(run("worker SIGKILL x3", kill_thrice, stretch=2.0))


def test_redis_killed_with_retries_pending_loses_nothing(run: Run) -> None:
    """SIGKILL Redis while retries wait in the delay queue; refused webhooks are sent again and all settles."""

    def kill_redis(fault: FaultRun) -> None:
        fault.stream.wait_sent(0.4)
        pending = wait_for(lambda: int(fault.redis.hlen("dramatiq:stripe-events.DQ.msgs")), 30, "a retry pending")
        refused_before = fault.stream.resent()
        sigkill(fault, "redis")
        down_at = time.monotonic()
        wait_for(lambda: fault.stream.resent() > refused_before, 20, "a delivery refused while Redis is down")
        time.sleep(max(0.0, REDIS_DOWN - (time.monotonic() - down_at)))  # the rest of the outage
        fault.stack.restart_part("redis")
        fault.note(f"Redis down {time.monotonic() - down_at:.1f} s with {pending} retries pending")
        fault.store_held_back()  # the payments whose events were retrying, as a slow create-intent write lands

    count = max(2, FAULT_PAYMENTS // 10)
    row = run("Redis SIGKILL + restart, retries pending", kill_redis, hold_back=count)
    assert row.resent > 0
    assert_clean(row)


def test_mongodb_frozen_for_ten_seconds_loses_nothing(run: Run) -> None:
    """SIGSTOP the MongoDB stand-in for 10 s mid-stream, then SIGCONT: everything settles once."""

    def freeze(fault: FaultRun) -> None:
        fault.stream.wait_sent(0.3)
        group = part(fault, "mongo").pid
        os.killpg(group, signal.SIGSTOP)
        try:
            time.sleep(10)  # the fault itself
        finally:
            os.killpg(group, signal.SIGCONT)

    assert_clean(run("MongoDB SIGSTOP 10 s", freeze))


def test_mongodb_killed_keeps_what_it_acknowledged(run: Run) -> None:
    """SIGKILL the MongoDB stand-in mid-stream and restart it: acknowledged writes survive, all settles once."""

    def kill_mongo(fault: FaultRun) -> None:
        fault.stream.wait_sent(0.5)
        intents = [p.intent_id for p in fault.payments]
        done = {"_id": {"$in": sorted(fault.stream.delivered_ids())}, "status": "processed"}
        processed = {d["_id"] for d in fault.db.stripe_events.find(done, {"_id": 1})}
        sent = {"context.payment_id": {"$in": intents}, "status": "sent"}
        emails = {d["dedupeKey"] for d in fault.db.notifications.find(sent, {"dedupeKey": 1})}
        sigkill(fault, "mongo")
        fault.stack.restart_part("mongo")
        still = {d["_id"] for d in fault.db.stripe_events.find({**done, "_id": {"$in": sorted(processed)}})}
        kept = {d["dedupeKey"] for d in fault.db.notifications.find({**sent, "dedupeKey": {"$in": sorted(emails)}})}
        assert (processed - still, emails - kept) == (set(), set()), "acknowledged writes lost by a SIGKILL"
        fault.note(f"{len(processed)} processed events and {len(emails)} sent emails acknowledged before the kill")

    assert_clean(run("MongoDB SIGKILL + restart", kill_mongo))


def test_smtp_down_for_fifteen_seconds_sends_every_email_once(run: Run) -> None:
    """Stop the SMTP server for 15 s mid-stream: refused emails wait and each is sent once when it is back."""

    def smtp_down(fault: FaultRun) -> None:
        fault.stream.wait_sent(0.3)
        intents = [p.intent_id for p in fault.payments]
        fault.stack.stop_part("smtp")
        down_at = time.monotonic()
        try:
            refused = {"context.payment_id": {"$in": intents}, "lastError": {"$exists": True}}
            wait_for(lambda: fault.db.notifications.count_documents(refused), 15, "an email refused")
            time.sleep(max(0.0, 15 - (time.monotonic() - down_at)))  # the rest of the outage
        finally:
            fault.stack.restart_part("smtp")
        fault.note(f"{fault.db.notifications.count_documents(refused)} emails refused at least once")

    assert_clean(run("SMTP down 15 s", smtp_down))


def test_stripe_answering_500_and_429_delays_but_loses_nothing(run: Run, stripe_front: StripeFront) -> None:
    """Stripe's API refuses every request, then every other one, 500 and 429 alternately: all settles once."""
    before = dict(stripe_front.refused)

    def refuse(fault: FaultRun) -> None:
        fault.stream.wait_sent(0.25)
        try:
            for share in (1.0, 0.5):
                stripe_front.failing(share)
                time.sleep(8)  # the fault itself
        finally:
            stripe_front.failing(0.0)
        refused = {status: n - before[status] for status, n in stripe_front.refused.items()}
        fault.note(f"Stripe answered {refused[500]} requests with 500 and {refused[429]} with 429")

    row = run("Stripe API 500/429 (8 s all, 8 s half)", refuse)
    assert stripe_front.total_refused() > sum(before.values()), "nothing asked Stripe while it was failing"
    assert_clean(row)
