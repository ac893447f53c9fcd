"""A retry waiting out its backoff survives a Redis restart (Dramatiq issue #527).

The loss window this closes: docs/architecture.md#loss-windows-and-what-closes-them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from adapters.queue import event_message, send
from adapters.settings import Settings
from devstack.send_event import seed_payment
from devstack.stack import Stack
from payments_ops import events
from tests.conftest import REAL_REDIS
from tests.support import wait_for
from workers.composition import build_worker

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(REAL_REDIS), reason="restarts Redis")]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Stack]:
    """A Redis of this test's own, with AOF, that it may restart."""
    stack = Stack(tmp_path, {})
    try:
        stack.start_parts(("redis",))
        yield stack
    finally:
        stack.stop()


def test_a_delayed_retry_is_processed_after_redis_restarts(own_redis: Stack, settings: Settings, db: Any) -> None:
    """An event retried after a Redis restart is processed in seconds, not when the worker exits."""
    tuned = dataclasses.replace(
        settings, redis_url=own_redis.urls["redis"], retry_min_backoff_ms=1500, retry_max_backoff_ms=1500
    )
    wired = build_worker(tuned)
    worker = dramatiq.Worker(wired.broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        intent_id = events.new_id("pi")
        metadata = {"source": events.SOURCE}  # ours, but its payment is not stored yet: RetryLater
        event = events.event(
            "payment_intent.processing",
            events.payment_intent("payment_intent.processing", intent_id, 49900, "INR", metadata),
        )
        send(wired.broker, event_message(event))
        held = f"dramatiq:__acks__.{wired.broker.broker_id}.stripe-events.DQ"
        wait_for(lambda: wired.broker.client.scard(held) == 1, 10, "the retry held by the delay consumer")
        seed_payment(db, intent_id)  # the retry can now succeed
        own_redis.restart_part("redis")  # drops the delayed retry from the worker's memory
        wait_for(lambda: db.stripe_events.find_one({"_id": event["id"], "status": "processed"}), 20, "the retry")
        assert db.payments.find_one({"paymentId": intent_id})["status"] == "processing"
    finally:
        worker.stop()
        wired.broker.flush_all()
        wired.close()
