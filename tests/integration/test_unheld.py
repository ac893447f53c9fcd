"""A live worker gives back what its ack set holds and it does not, and nothing it holds.

A fetch Redis ran but whose answer never reached the consumer leaves messages in the worker's
ack set that nothing in the process knows of (the fault test freezes Redis for it:
``tests/faults/test_stranded_fetch.py``). Here the same fetch is made with the worker's broker id,
its answer dropped, next to messages the consumer holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import cast

import pytest

from adapters.queue import STRIPE_EVENTS_QUEUE, event_message, send
from adapters.settings import Settings
from payments_ops import events
from workers.broker import WorkerBroker, build_worker_broker
from workers.consumer import Consumer
from workers.middleware.unheld import RequeueUnheld, ack_set


@pytest.fixture
def broker(settings: Settings) -> Iterator[WorkerBroker]:
    broker = build_worker_broker(dataclasses.replace(settings, broker_maintenance_chance=0))
    broker.flush_all()
    yield broker
    broker.flush_all()
    broker.close()


def queued(broker: WorkerBroker) -> list[str]:
    entries = cast(list[bytes], broker.client.lrange(f"{broker.namespace}:{STRIPE_EVENTS_QUEUE}", 0, -1))
    return [entry.decode() for entry in entries]


def test_only_what_two_rounds_in_a_row_find_unheld_is_given_back(broker: WorkerBroker) -> None:
    """Of four messages in the ack set, the two the consumer holds stay; the two it never got go back
    on the second round, not the first (a fetch in flight looks the same for a moment)."""
    consumer = broker.consume(STRIPE_EVENTS_QUEUE, prefetch=8, timeout=20)
    assert isinstance(consumer, Consumer)
    for _ in range(4):
        send(broker, event_message(events.event("payment_intent.succeeded", {"id": "pi_1"})))
    fetched = broker.fetch(STRIPE_EVENTS_QUEUE, 4)
    (cached, _), (handed, _), (lost, _), (late, _) = fetched
    consumer.message_cache = [fetched[0]]  # fetched, not handed out yet
    consumer.handed_out.add(handed)  # handed out, running
    checker = RequeueUnheld()

    checker.round(broker)
    assert queued(broker) == []
    assert checker.unheld == {STRIPE_EVENTS_QUEUE: {lost, late}}
    broker.do_ack(STRIPE_EVENTS_QUEUE, late)  # an answer that was on its way after all, then acked

    checker.round(broker)
    assert queued(broker) == [lost]
    members = cast(set[bytes], broker.client.smembers(ack_set(broker, STRIPE_EVENTS_QUEUE)))
    assert {m.decode() for m in members} == {cached, handed}
    assert checker.unheld[STRIPE_EVENTS_QUEUE] == set()

    checker.round(broker)
    assert queued(broker) == [lost]  # nothing given back twice, nothing held given back


def test_a_round_redis_does_not_answer_starts_the_count_again(broker: WorkerBroker) -> None:
    """Seen unheld, then a failed round: the next round's sighting is a first one."""
    consumer = broker.consume(STRIPE_EVENTS_QUEUE, prefetch=8, timeout=20)
    assert isinstance(consumer, Consumer)
    send(broker, event_message(events.event("payment_intent.succeeded", {"id": "pi_1"})))
    [(lost, _)] = broker.fetch(STRIPE_EVENTS_QUEUE, 1)
    checker = RequeueUnheld()
    checker.round(broker)
    assert checker.unheld[STRIPE_EVENTS_QUEUE] == {lost}
    client = broker.client
    broker.client = type(client)(host="127.0.0.1", port=9)  # nothing listens there
    try:
        checker.round(broker)
    finally:
        broker.client.close()
        broker.client = client
    assert checker.unheld == {}
    checker.round(broker)
    assert queued(broker) == []
    checker.round(broker)
    assert queued(broker) == [lost]
