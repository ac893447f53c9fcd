"""Percentiles and medians as the tables report them."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (1..99) of ``values``; nan when empty."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[int(q) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def median_run(runs: list[T], key: Callable[[T], float]) -> T:
    """The run whose ``key`` is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=key)
    return ordered[(len(ordered) - 1) // 2]
