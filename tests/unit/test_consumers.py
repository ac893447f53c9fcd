"""The worker's consumers (``workers.consumer.Consumer``): a delay queue's backs off further than
the others', a yielding queue's holds one message at a time while the process has other work, and
each knows which messages of its ack set the process holds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.errors import ConnectionClosed

from adapters.signing import Signer
from workers.broker import WorkerBroker
from workers.consumer import DELAY_POLL_FACTOR, YIELD_WINDOW, YIELDING_PREFETCH, Consumer


@pytest.fixture
def broker() -> Iterator[WorkerBroker]:
    broker = WorkerBroker(Signer((b"k",)), yielding=frozenset({"emails"}), url="redis://127.0.0.1:9/0", middleware=[])
    yield broker  # consumers connect on their first fetch: nothing listens on port 9
    broker.close()


def consume(broker: WorkerBroker, queue: str, prefetch: int = 2) -> Consumer:
    consumer = broker.consume(queue, prefetch=prefetch, timeout=20)
    assert isinstance(consumer, Consumer)
    return consumer


def test_a_delay_queue_s_consumer_polls_at_most_ten_times_less_often(broker: WorkerBroker) -> None:
    assert consume(broker, "emails").timeout == 20
    assert consume(broker, "emails.DQ").timeout == 20 * DELAY_POLL_FACTOR == 200
    assert consume(broker, "DQ").timeout == 20  # a queue that only looks like one


def test_the_emails_hold_one_message_while_events_are_held(broker: WorkerBroker) -> None:
    emails, events, retries = (consume(broker, q, prefetch=16) for q in ("emails", "stripe-events", "stripe-events.DQ"))
    assert emails.prefetch == events.prefetch == 16  # nothing held anywhere: the full prefetch

    retries.queued_message_ids.add("waiting-out-its-backoff")
    assert emails.prefetch == 16  # a delay queue's messages are not work yet

    events.message_cache.append(b"fetched, not started")
    assert emails.prefetch == YIELDING_PREFETCH == 1
    assert events.prefetch == 16  # only the yielding queue yields
    events.message_cache.clear()
    events.queued_message_ids.add("running")
    assert emails.prefetch == 1

    restarted = consume(broker, "stripe-events", prefetch=16)  # after a fault: the old one is gone
    assert not restarted.outstanding_message_count
    assert emails.prefetch == 16


def test_the_emails_go_on_yielding_for_a_while_after_an_event_was_given_out(
    broker: WorkerBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails, events = consume(broker, "emails", prefetch=16), consume(broker, "stripe-events", prefetch=16)
    dramatiq.actor(actor_name="a", queue_name="stripe-events", broker=broker)(lambda: None)
    message = broker.signer.sign(Message(queue_name="stripe-events", actor_name="a", args=(), kwargs={}, options={}))
    message.options["redis_message_id"] = "r1"
    events.message_cache.append(("r1", message.encode()))  # as fetched: the entry's id, its data
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    assert next(events) is not None  # given to a worker thread, then done and acked:
    events.queued_message_ids.clear()
    assert emails.prefetch == 1
    monkeypatch.setattr(time, "monotonic", lambda: now + YIELD_WINDOW)
    assert emails.prefetch == 16


def test_a_message_handed_out_is_held_until_acked_and_a_restart_keeps_the_normal_queue_s_hold(
    broker: WorkerBroker,
) -> None:
    """What the worker was given stays held across a restart of its queue's consumer (it still runs and
    is acked through the new one), and is let go by an ack; a delay queue's new consumer holds nothing."""
    events, retries = consume(broker, "stripe-events"), consume(broker, "stripe-events.DQ")
    dramatiq.actor(actor_name="a", queue_name="stripe-events", broker=broker)(lambda: None)
    message = broker.signer.sign(Message(queue_name="stripe-events", actor_name="a", args=(), kwargs={}, options={}))
    message.options["redis_message_id"] = "r1"
    events.message_cache = [("r1", message.encode()), ("r2", b"")]  # as fetched, not handed out yet
    assert events.held() == {"r1", "r2"}
    proxy = next(events)
    assert proxy is not None and events.held() >= {"r1"}
    retries.handed_out.add("d1")

    restarted, restarted_retries = consume(broker, "stripe-events"), consume(broker, "stripe-events.DQ")
    assert restarted.held() == {"r1"}  # the old consumer's cache is gone, what it handed out is not
    assert restarted_retries.held() == set()  # Dramatiq dropped or gave back its delayed messages
    with pytest.raises(ConnectionClosed):  # nothing listens on port 9: Dramatiq will try the ack again
        restarted.ack(proxy)
    assert restarted.held() == {"r1"}


def test_a_message_is_let_go_once_acked_nacked_or_given_back(
    broker: WorkerBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack Redis took, an ack that failed for good, and a give-back that failed all let the message go."""
    events = consume(broker, "stripe-events")
    proxies = []
    for redis_id in ("r1", "r2", "r3", "r4"):
        events.handed_out.add(redis_id)
        proxies.append(MessageProxy(Message("stripe-events", "a", (), {}, {"redis_message_id": redis_id})))
    monkeypatch.setattr(_RedisConsumer, "ack", lambda self, message: None)
    events.ack(proxies[0])
    monkeypatch.setattr(_RedisConsumer, "nack", lambda self, message: None)
    events.nack(proxies[1])
    assert events.held() == {"r3", "r4"}

    def timed_out(self: object, message: object) -> None:
        raise redis.TimeoutError("Timeout reading from socket")  # Dramatiq gives such an ack up

    monkeypatch.setattr(_RedisConsumer, "ack", timed_out)
    with pytest.raises(redis.TimeoutError):
        events.ack(proxies[2])
    with pytest.raises(ConnectionClosed):  # Redis away: the messages are not in memory any more either
        events.requeue(iter(proxies[3:]))
    assert events.held() == set()


def test_only_a_worker_s_broker_consumes() -> None:
    """A broker built for enqueueing refuses to consume: no consumer without the door runs a message."""
    from adapters.queue import Broker

    enqueuer = Broker(Signer((b"k",)), url="redis://127.0.0.1:9/0", middleware=[])
    try:
        with pytest.raises(TypeError, match=r"only enqueues: a worker consumes through workers\.broker\.WorkerBroker"):
            enqueuer.consume("stripe-events", prefetch=1, timeout=20)
    finally:
        enqueuer.close()
