"""The seed's success metrics over a named window, from MongoDB's facts (docs/success-metrics.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from domain.success_metrics import DEFAULT_WINDOW, WINDOWS, aware, over_window
from usecases.ports import SuccessFacts

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


#: Seconds an answer is served as fresh, per window: the scraped ones 30 s; a long window, whose steps
#: are days, changes little in minutes and costs the most to compute (docs/performance.md#success-metrics).
FRESH_FOR = {"1h": 30.0, "24h": 30.0, "7d": 300.0, "30d": 900.0}


class CachedMeasure:
    """``measure`` per window, kept ``ttl`` seconds (``FRESH_FOR``) and shared by the API, the page and ``/metrics``.

    A fresh answer is served as it is; an older one is served while one background thread computes
    the next (so a load never waits for MongoDB once the window was measured); the first ever is
    computed on the spot. One computation per window at a time, however many callers ask.
    """

    def __init__(
        self,
        facts: SuccessFacts,
        ttl: Mapping[str, float] = FRESH_FOR,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.facts, self.ttl, self.clock, self.monotonic = facts, ttl, clock, monotonic
        self.kept: dict[str, tuple[float, dict[str, Any]]] = {}
        self.locks = {name: threading.Lock() for name in WINDOWS}

    def get(self, window: str | None = DEFAULT_WINDOW) -> dict[str, Any]:
        name = window_of(window)
        kept = self.kept.get(name)
        if kept is None:
            with self.locks[name]:
                kept = self.kept.get(name) or self._compute(name)
            return kept[1]
        if self.monotonic() - kept[0] >= self.ttl[name] and self.locks[name].acquire(blocking=False):
            threading.Thread(target=self._refresh, args=(name,), name=f"success-metrics-{name}", daemon=True).start()
        return kept[1]

    def _compute(self, name: str) -> tuple[float, dict[str, Any]]:
        result = measure(self.facts, name, now=self.clock())
        # Aged from when it is ready: a computation longer than the ttl is not stale on arrival.
        self.kept[name] = (self.monotonic(), result)
        return self.kept[name]

    def _refresh(self, name: str) -> None:
        try:
            self._compute(name)
        except Exception:  # the old answer stays; the next request tries again
            log.exception("success metrics not refreshed", extra={"window": name})
        finally:
            self.locks[name].release()
