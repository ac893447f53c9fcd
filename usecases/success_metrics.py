"""The seed's success metrics over a named window, from MongoDB's facts (docs/success-metrics.md)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.success_metrics import DEFAULT_WINDOW, WINDOWS, aware, over_window
from usecases.ports import MetricSnapshots, SuccessFacts

log = logging.getLogger(__name__)


class UnknownWindow(ValueError):
    """A window name that is not one of ``WINDOWS``; the message lists those that are."""


def window_of(name: str | None) -> str:
    """The window's name, ``DEFAULT_WINDOW`` for None; ``UnknownWindow`` otherwise."""
    chosen = DEFAULT_WINDOW if name is None else name
    if chosen not in WINDOWS:
        raise UnknownWindow(f"window must be one of {', '.join(WINDOWS)}")
    return chosen


def measure(facts: SuccessFacts, window: str | None = DEFAULT_WINDOW, *, now: datetime) -> dict[str, Any]:
    """Every metric over ``window`` ending at ``now``, with its ``series`` per step (JSON-ready).

    ``{"window", "start", "end", "step", "paymentSuccessRate", "webhookDeliveryRate",
    "processingSeconds", "activationSeconds", "refundRate", "conversionRate", "revenue", "series"}``.
    """
    chosen = WINDOWS[window_of(window)]
    now = aware(now)
    start = chosen.start(now)
    return over_window(chosen, now, facts.payments(start, now), facts.events(start, now))


#: Seconds a measurement is served as fresh, per window: the scraped ones 30 s; a long window, whose
#: steps are days, changes little in minutes and costs the most to compute (docs/success-metrics.md).
FRESH_FOR = {"1h": 30.0, "24h": 30.0, "7d": 300.0, "30d": 900.0}
#: How long one process holds a window's next measurement before another may take it over.
LEASE = timedelta(minutes=10)


class CachedMeasure:
    """``measure`` per window, shared by the API, the page and ``/metrics`` of every process.

    Each measurement is kept in ``snapshots`` (MongoDB), so a process that has just started serves
    the last one at once instead of reading a month of payments. A fresh one (``FRESH_FOR``) is
    served as it is; an older one is served while one thread computes the next, and that thread
    first claims the window, so one process across all of them computes it; only a window never
    measured is computed on the spot. The workers call ``refresh`` on a timer, so the pages rarely
    find one stale (``workers.middleware.success_metrics``).
    """

    def __init__(
        self,
        facts: SuccessFacts,
        snapshots: MetricSnapshots,
        holder: str,
        ttl: Mapping[str, float] = FRESH_FOR,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.facts, self.snapshots, self.holder, self.ttl, self.clock = facts, snapshots, holder, ttl, clock
        self.kept: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self.locks = {name: threading.Lock() for name in WINDOWS}

    def get(self, window: str | None = DEFAULT_WINDOW) -> dict[str, Any]:
        name = window_of(window)
        kept = self._freshest(name)
        if kept is None:
            with self.locks[name]:
                kept = self._freshest(name) or self._compute(name)
        elif not self._fresh(name, kept) and self.locks[name].acquire(blocking=False):
            threading.Thread(target=self._refresh, args=(name,), name=f"success-metrics-{name}", daemon=True).start()
        return kept[1]

    def current(self, window: str | None = DEFAULT_WINDOW) -> dict[str, Any]:
        """A fresh measurement, waiting for it if need be (a one-shot command has no later to refresh in)."""
        name = window_of(window)
        kept = self._freshest(name)
        return kept[1] if kept is not None and self._fresh(name, kept) else self._compute(name)[1]

    def refresh(self, name: str) -> bool:
        """Measure ``name`` again if its last measurement is stale and no other process is at it; True if measured."""
        kept = self._freshest(name)
        if kept is not None and self._fresh(name, kept):
            return False
        if not self.snapshots.claim(name, self.holder, self.clock(), LEASE):
            return False
        self._compute(name)
        return True

    def _fresh(self, name: str, kept: tuple[datetime, dict[str, Any]]) -> bool:
        return (self.clock() - kept[0]).total_seconds() < self.ttl[name]

    def _freshest(self, name: str) -> tuple[datetime, dict[str, Any]] | None:
        """This process's own measurement while fresh, else the newest any process kept."""
        kept = self.kept.get(name)
        if kept is not None and self._fresh(name, kept):
            return kept
        stored = self.snapshots.load(name)
        if stored is not None and (kept is None or stored[0] > kept[0]):
            self.kept[name] = kept = stored
        return kept

    def _compute(self, name: str) -> tuple[datetime, dict[str, Any]]:
        result = measure(self.facts, name, now=self.clock())
        # Aged from when it is ready: a computation longer than the ttl is not stale on arrival.
        self.kept[name] = measured = (self.clock(), result)
        self.snapshots.save(name, *measured)
        return measured

    def _refresh(self, name: str) -> None:
        try:
            self.refresh(name)
        except Exception:  # the old answer stays; the next request tries again
            log.exception("success metrics not refreshed", extra={"window": name})
        finally:
            self.locks[name].release()
