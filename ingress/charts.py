"""Geometry of the success-metrics page's inline SVG charts: one bar per step, computed here, drawn by the template.

Server-side so the page reads without JavaScript; a step with no data gets no bar (a gap), not a
zero. A bar's colour says whether that step met the target, and its ``<title>`` says it in words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 360.0, 90.0
#: Room under the bars for the first and last step's labels.
LABEL_ROOM = 14.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    state: str  # "ok", "off" or "none" (no target): the CSS class
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    target_y: float | None
    top: str
    first: str
    last: str
    width: float = WIDTH
    height: float = HEIGHT


def _state(ok: object) -> str:
    return "ok" if ok is True else "off" if ok is False else "none"


def chart(
    series: Sequence[Mapping[str, Any]],
    value_of: Callable[[Mapping[str, Any]], tuple[float | None, object]],
    *,
    target: float | None,
    show: Callable[[float], str],
) -> Chart:
    """Bars of ``value_of(step)`` → ``(value, ok)`` per step, scaled to the largest value or the target."""
    values = [value_of(step) for step in series]
    known = [v for v, _ in values if v is not None]
    top = max([*known, target or 0.0, 1e-9])
    plot = HEIGHT - LABEL_ROOM
    slot = WIDTH / max(1, len(series))
    bars = []
    for i, ((value, ok), step) in enumerate(zip(values, series, strict=True)):
        if value is None:
            continue
        height = max(1.0, plot * value / top)
        words = {"ok": "on target", "off": "off target", "none": ""}[_state(ok)]
        bars.append(
            Bar(
                x=round(i * slot + slot * 0.1, 2),
                y=round(plot - height, 2),
                width=round(slot * 0.8, 2),
                height=round(height, 2),
                state=_state(ok),
                title=f"{step['start'][:16].replace('T', ' ')}: {show(value)} {words}".strip(),
            )
        )
    target_y = None if target is None else round(plot - plot * target / top, 2)
    first = series[0]["start"][:16].replace("T", " ") if series else ""
    last = series[-1]["end"][:16].replace("T", " ") if series else ""
    return Chart(bars, target_y, show(top), first, last)
