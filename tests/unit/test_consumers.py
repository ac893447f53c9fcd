"""The broker's consumers: a delay queue's backs off further than the others' (``adapters.queue.Consumer``)."""

from __future__ import annotations

from adapters.queue import DELAY_POLL_FACTOR, Broker, Consumer


def test_a_delay_queue_s_consumer_polls_at_most_ten_times_less_often() -> None:
    broker = Broker(url="redis://127.0.0.1:9/0", middleware=[])  # consumers connect on their first fetch

    def cap(queue: str) -> int:
        consumer = broker.consume(queue, prefetch=2, timeout=20)
        assert isinstance(consumer, Consumer)
        return consumer.timeout

    try:
        assert cap("emails") == 20
        assert cap("emails.DQ") == 20 * DELAY_POLL_FACTOR == 200
        assert cap("DQ") == 20  # a queue that only looks like one
    finally:
        broker.close()
