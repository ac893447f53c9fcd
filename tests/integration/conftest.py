"""Fixtures shared by the integration tests that need a running worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from adapters.settings import Settings
from workers.bootstrap import Worker, bootstrap


@pytest.fixture
def worker(settings: Settings, db: Any) -> Iterator[Worker]:
    """A real Dramatiq worker in this process, on the test Redis and MongoDB."""
    wired = bootstrap(settings)
    wired.broker.flush_all()
    running = dramatiq.Worker(wired.broker, worker_timeout=50, worker_threads=2)
    running.start()
    yield wired
    running.stop()
    wired.broker.flush_all()
    wired.close()
