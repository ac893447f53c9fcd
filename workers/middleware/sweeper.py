"""Re-enqueue notifications left behind, every few seconds and once at boot.

The sweeps: docs/operations.md#sweeps-and-stuck-work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from dramatiq import Broker, Message

from adapters.queue import notification_message
from adapters.settings import Settings
from workers.middleware.periodic import Periodic

log = logging.getLogger(__name__)


class Sweepable(Protocol):
    def pending_keys(self, older_than: timedelta) -> list[str]: ...


def sweep_age(settings: Settings) -> timedelta:
    """How long a ``pending`` notification sits untouched before the sweep re-enqueues it.

    Longer than the longest retry backoff (plus one sweep), so a notification waiting for its
    scheduled retry is not enqueued a second time; duplicates would be harmless, only wasteful.
    """
    return timedelta(milliseconds=settings.retry_max_backoff_ms, seconds=settings.notification_sweep_seconds)


class NotificationSweeper(Periodic):
    """Every ``interval_seconds`` (and once at boot), enqueue a send for each notification left behind.

    It heals a crash between the outbox write and the enqueue, a message lost by the broker,
    and a worker that died while holding a claim. Every worker process runs one; the claim
    keeps sending single, so the extra messages are only skipped.
    """

    name = "notification-sweeper"

    def __init__(
        self,
        outbox: Sweepable,
        enqueue: Callable[[Message[Any]], object],
        interval_seconds: float,
        *,
        older_than: timedelta | None = None,
    ) -> None:
        super().__init__(interval_seconds)
        self.outbox = outbox
        self.enqueue = enqueue
        self.older_than = older_than if older_than is not None else timedelta(seconds=interval_seconds)

    def sweep(self) -> int:
        """One pass; returns how many sends were enqueued."""
        keys = self.outbox.pending_keys(self.older_than)
        for key in keys:
            self.enqueue(notification_message(key))
        if keys:
            log.info("sweep re-enqueued %d notifications", len(keys), extra={"outcome": "swept"})
        return len(keys)

    def round(self, broker: Broker) -> None:
        self.sweep()
