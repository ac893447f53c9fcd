"""One fault run: fresh payments, the stream, a fault struck during it, settling, and the count of effects."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devstack.stack import Stack
from tests.faults.checks import Mailbox, count_effects, settle
from tests.faults.payments import REFUND, RETRIED, LocalStripe, Payment, prepare, store, stories
from tests.faults.report import Row, spelled
from tests.faults.stream import Stream

#: Seconds the stream is spread over: 20 s for 200 payments, never under 8 s.
SECONDS_PER_PAYMENT = 0.1
#: How long a killed worker's in-flight work may take to come back (the issue's limit).
REDELIVERY_LIMIT = 60.0
#: Seconds a run may take to settle after its stream, before what is missing counts as lost.
SETTLE_TIMEOUT = 180.0


@dataclass
class FaultRun:
    """What a fault action gets: the stack, the stream under way, and the run's notes."""

    stack: Stack
    db: Any
    redis: Any
    stream: Stream
    payments: list[Payment]
    row: Row
    #: Payments whose documents are stored only when the fault calls ``store_held_back``.
    held_back: list[Payment] = field(default_factory=list)
    #: When the fault killed the worker (see ``checks.resent_across_a_kill``).
    kills: list[datetime] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.row.notes.append(text)

    def store_held_back(self) -> None:
        store(self.db, self.held_back)
        self.held_back = []


def run_fault(
    stack: Stack,
    db: Any,
    redis_client: Any,
    mailbox: Mailbox,
    row: Row,
    fault: Callable[[FaultRun], None],
    *,
    hold_back: int = 0,
    stretch: float = 1.0,
) -> Row:
    """Run ``fault`` against a stream of ``row.payments`` fresh payments and fill ``row`` with what came of it.

    ``hold_back`` payments are stored only when the fault says so (their events are retried till
    then); ``stretch`` spreads the stream over that many times its usual length.
    """
    started = time.monotonic()
    rng = random.Random(row.fault)
    stripe = LocalStripe(stack.urls["stripe"])
    try:
        stripe.flush()
        payments = prepare(stripe, stories(row.payments, rng))
        held = payments[:hold_back]
        store(db, payments[hold_back:])
        seconds = max(8.0, SECONDS_PER_PAYMENT * len(payments)) * stretch
        stream = Stream(stack, db, stripe, payments, seconds, rng).start()
        run = FaultRun(stack, db, redis_client, stream, payments, row, held)
        try:
            fault(run)
            traffic = stream.join(timeout=seconds + 240)
        finally:
            stream.stop()
            run.store_held_back()
        row.deliveries = traffic.deliveries + traffic.from_stripe
        row.distinct, row.resent = len(traffic.event_ids), traffic.resent
        expected = len(payments) + sum(p.story in (RETRIED, REFUND) for p in payments)
        assert row.distinct == expected, f"the stream delivered {row.distinct} distinct events of {expected}"
        row.settled_in, left = settle(db, redis_client, payments, traffic.event_ids, SETTLE_TIMEOUT)
        if left:
            row.notes.append(f"still in flight after {SETTLE_TIMEOUT:.0f} s: {left}")
        tally = count_effects(db, redis_client, stripe, mailbox, payments, traffic.event_ids, run.kills)
        row.lost, row.duplicated, row.wrong = tally.lost, tally.duplicated, tally.wrong
        row.notes.extend(tally.notes)
    finally:
        stripe.close()
        row.took = time.monotonic() - started
    return row


def assert_clean(row: Row) -> None:
    """The run settled with nothing lost, nothing done twice and nothing done wrong."""
    assert row.settled_in is not None, f"did not settle within {SETTLE_TIMEOUT}s: {row.line()}"
    assert not sum(row.lost.values()), f"lost {spelled(row.lost)}"
    assert not sum(row.duplicated.values()), f"duplicated {spelled(row.duplicated)}"
    assert not sum(row.wrong.values()), f"wrong {spelled(row.wrong)}"
