"""The seed's success metrics over a named window, from MongoDB's facts (docs/success-metrics.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.success_metrics import DEFAULT_WINDOW, WINDOWS, aware, over_window
from usecases.ports import SuccessFacts


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
