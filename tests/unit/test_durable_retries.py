"""A retry whose re-enqueue hits a Redis outage is not lost (Dramatiq PR #545).

The loss window this closes: docs/architecture.md#loss-windows-and-what-closes-them.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker

from workers.middleware.retries import DurableRetries


class FlakyBroker(StubBroker):
    """A stub broker whose first ``failures`` enqueues fail as if Redis were down."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise redis.ConnectionError("Connection refused")
        return super().enqueue(message, delay=delay)


def failed_attempt(broker: FlakyBroker, retries: DurableRetries) -> MessageProxy:
    dramatiq.actor(actor_name="job", broker=broker, max_retries=3)(lambda: None)
    proxy = MessageProxy(Message(queue_name="default", actor_name="job", args=(), kwargs={}, options={}))
    retries.after_process_message(broker, proxy, exception=RuntimeError("boom"))
    return proxy


def test_the_retry_is_enqueued_once_redis_answers_again() -> None:
    """Two failed re-enqueues are waited out; the retry lands in the delay queue, not lost."""
    broker = FlakyBroker(failures=2)
    proxy = failed_attempt(broker, DurableRetries(min_backoff=10, max_backoff=20, give_up_after=10))
    assert broker.attempts == 3 and not proxy.failed
    assert len(broker.queues["default.DQ"].queue) == 1
    assert proxy.options["failed_attempts"] == 1 and "first_failed_at" in proxy.options


def test_an_outage_beyond_the_limit_fails_the_message_instead_of_dropping_it() -> None:
    """If Redis never answers, the message is failed (nacked into the dead letters), never acked."""
    broker = FlakyBroker(failures=10**6)
    proxy = failed_attempt(broker, DurableRetries(min_backoff=10, max_backoff=20, give_up_after=0.3))
    assert proxy.failed and broker.attempts >= 2


class RefusingBroker(FlakyBroker):
    """Redis answers, but refuses the write (a failover's READONLY), ``failures`` times."""

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise redis.ResponseError("READONLY You can't write against a read only replica.")
        return StubBroker.enqueue(self, message, delay=delay)


def test_a_refused_write_is_waited_out_like_an_outage() -> None:
    """READONLY, MISCONF or OOM answers are retried until Redis takes the retry; nothing is acked meanwhile."""
    broker = RefusingBroker(failures=3)
    proxy = failed_attempt(broker, DurableRetries(min_backoff=10, max_backoff=20, give_up_after=10))
    assert broker.attempts == 4 and not proxy.failed
    assert len(broker.queues["default.DQ"].queue) == 1


class BrokenBroker(FlakyBroker):
    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        raise ValueError("something no one expected")


def test_any_other_error_in_the_retry_path_fails_the_message() -> None:
    """An unexpected exception while scheduling the retry dead-letters the message instead of acking it."""
    broker = BrokenBroker(failures=0)
    proxy = failed_attempt(broker, DurableRetries(min_backoff=10, max_backoff=20, give_up_after=10))
    assert proxy.failed
