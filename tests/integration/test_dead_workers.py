"""A dead worker's in-flight messages come back within a bounded time, a live worker's never.

The loss window this closes: docs/architecture.md#loss-windows-and-what-closes-them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from adapters.compat.dramatiq import check_dramatiq_internals
from adapters.dead_workers import requeue_dead_workers
from adapters.queue import STRIPE_EVENTS_QUEUE, Broker, build_broker, event_message, send
from adapters.settings import Settings
from payments_ops import events
from tests.support import wait_for


@pytest.fixture
def brokers(settings: Settings) -> Iterator[tuple[Broker, Broker]]:
    """Two worker processes' brokers, as far as Redis can tell: a victim and a survivor (heartbeat 0.5 s)."""
    quick = dataclasses.replace(settings, broker_heartbeat_timeout_ms=500, broker_maintenance_chance=0)
    victim, survivor = build_broker(quick), build_broker(quick)
    victim.flush_all()
    yield victim, survivor
    survivor.flush_all()
    victim.close()
    survivor.close()


def queued(broker: Broker) -> int:
    return int(broker.client.llen(f"{broker.namespace}:{STRIPE_EVENTS_QUEUE}"))


def test_a_dead_workers_messages_are_requeued_and_a_live_ones_are_not(
    brokers: tuple[Broker, Broker],
) -> None:
    """The victim took 3 messages and died; the survivor, heartbeating, keeps its 1 and gets the 3 back."""
    victim, survivor = brokers
    check_dramatiq_internals(victim)
    for _ in range(4):
        send(victim, event_message(events.event("payment_intent.succeeded", {"id": "pi_1"})))
    assert len(victim.do_fetch(STRIPE_EVENTS_QUEUE, 3)) == 3
    assert len(survivor.do_fetch(STRIPE_EVENTS_QUEUE, 1)) == 1
    assert queued(victim) == 0
    # The survivor's rounds keep its own heartbeat fresh; the victim's goes stale after 0.5 s.
    requeued = wait_for(lambda: requeue_dead_workers(survivor), 10, "the victim to be found dead")
    assert requeued == {victim.broker_id: 3}
    assert queued(victim) == 3
    survivor_acks = f"{survivor.namespace}:__acks__.{survivor.broker_id}.{STRIPE_EVENTS_QUEUE}"
    assert survivor.client.scard(survivor_acks) == 1
    assert requeue_dead_workers(survivor) == {}  # nothing is requeued twice
