"""Fixtures shared by the integration tests that need a running worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from adapters.queue import build_broker
from adapters.settings import Settings
from workers.composition import Worker, build_worker


@pytest.fixture
def worker(settings: Settings, db: Any) -> Iterator[Worker]:
    """A real Dramatiq worker in this process, on the test Redis and MongoDB."""
    wired = build_worker(settings)
    wired.broker.flush_all()
    running = dramatiq.Worker(wired.broker, worker_timeout=50, worker_threads=2)
    running.start()
    yield wired
    running.stop()
    wired.broker.flush_all()
    wired.close()


@pytest.fixture
def broker(settings: Settings) -> Iterator[RedisBroker]:
    """An enqueuer's broker on the test Redis (signing, no worker), its queues empty before and after."""
    broker = build_broker(settings)
    broker.flush_all()
    yield broker
    broker.flush_all()
    broker.close()
