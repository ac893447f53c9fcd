"""The seed's success metrics: targets, windows and the arithmetic over plain facts (docs/success-metrics.md).

Nothing here reads a database: the adapter hands in one ``PaymentFacts`` per payment that has
anything in the window and one ``EventFacts`` per Stripe event received in it, and ``summarize``
turns them into the numbers. An empty window gives ``value`` None and ``ok`` None (no claim
either way), never 0 or 100 %.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import payments
from domain.payments import PAID

#: Statuses that count as a failed outcome while the payment is still in them (paid ones: ``PAID``).
FAILED = frozenset({payments.FAILED, payments.CANCELED})

#: Event sources (``stripe_events.source``): pushed by Stripe, or found by reconcile.
WEBHOOK = "webhook"
RECONCILE = "reconcile"
SOURCES = frozenset({WEBHOOK, RECONCILE})


@dataclass(frozen=True)
class Target:
    """A metric's target: ``value >= bound`` (``at_least``) or ``value <= bound``, or ``< bound`` when ``strict``."""

    bound: float
    at_least: bool
    strict: bool = False

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_least:
            return value > self.bound if self.strict else value >= self.bound
        return value < self.bound if self.strict else value <= self.bound

    def describe(self) -> str:
        sign = (">" if self.strict else "≥") if self.at_least else ("<" if self.strict else "≤")
        return f"{sign} {self.bound:g}"


#: The seed's targets ("Success Metrics to Track"); times are judged on their mean.
TARGETS: dict[str, Target] = {
    "paymentSuccessRate": Target(0.98, at_least=True),
    "webhookDeliveryRate": Target(0.99, at_least=True),
    "processingSeconds": Target(2.0, at_least=False, strict=True),
    "activationSeconds": Target(5.0, at_least=False, strict=True),
    "refundRate": Target(0.02, at_least=False),
}


@dataclass(frozen=True)
class Window:
    """A named look-back (``1h`` …) and the step of its series."""

    name: str
    length: timedelta
    step: timedelta

    def start(self, now: datetime) -> datetime:
        return now - self.length

    def buckets(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """``[start, end)`` spans covering ``[now - length, now]``, on step boundaries (UTC), the first clipped."""
        start = self.start(now)
        edge = floor_to(start, self.step)
        spans: list[tuple[datetime, datetime]] = []
        while edge <= now:
            spans.append((max(edge, start), min(edge + self.step, now)))
            edge += self.step
        return [(a, b) for a, b in spans if b > a] or [(start, now)]


WINDOWS: dict[str, Window] = {
    "1h": Window("1h", timedelta(hours=1), timedelta(minutes=5)),
    "24h": Window("24h", timedelta(hours=24), timedelta(hours=1)),
    "7d": Window("7d", timedelta(days=7), timedelta(days=1)),
    "30d": Window("30d", timedelta(days=30), timedelta(days=1)),
}
DEFAULT_WINDOW = "24h"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to(at: datetime, step: timedelta) -> datetime:
    """``at`` rounded down to a multiple of ``step`` since the epoch (UTC midnight for days)."""
    at = aware(at)
    return _EPOCH + ((at - _EPOCH) // step) * step


def aware(at: datetime) -> datetime:
    """A datetime as UTC-aware (pymongo hands back naive UTC unless told otherwise)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PaymentFacts:
    """One payment as the metrics see it. ``outcome_at``: when a failed or canceled payment last
    changed (it still is failed or canceled); ``dispute_lost``: the lost dispute's amount, else 0."""

    created_at: datetime | None
    status: str
    amount: int
    currency: str
    paid_at: datetime | None = None
    activated_at: datetime | None = None
    outcome_at: datetime | None = None
    amount_refunded: int = 0
    dispute_lost: int = 0
    service_id: str | None = None
    service_name: str | None = None


@dataclass(frozen=True)
class EventFacts:
    """One Stripe event: when it was first received, when it was processed (if it was), how it arrived."""

    received_at: datetime
    processed_at: datetime | None = None
    source: str = WEBHOOK


def ratio(numerator: int, denominator: int, name: str | None = None) -> dict[str, Any]:
    """``{"value", "target", "ok", "numerator", "denominator"}``; value and ok None when nothing was counted."""
    value = numerator / denominator if denominator else None
    target = TARGETS.get(name) if name else None
    return {
        "value": value,
        "target": target.bound if target else None,
        "ok": target.met(value) if target else None,
        "numerator": numerator,
        "denominator": denominator,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def durations(seconds: Sequence[float], name: str) -> dict[str, Any]:
    """``{"mean", "p50", "p95", "count", "target", "ok"}`` of some durations; the target judges the mean."""
    mean = sum(seconds) / len(seconds) if seconds else None
    target = TARGETS[name]
    return {
        "mean": mean,
        "p50": percentile(seconds, 0.5),
        "p95": percentile(seconds, 0.95),
        "count": len(seconds),
        "target": target.bound,
        "ok": target.met(mean),
    }


def _seconds(later: datetime, earlier: datetime) -> float:
    return max(0.0, (aware(later) - aware(earlier)).total_seconds())


def _paid(p: PaymentFacts) -> bool:
    return p.status in PAID


class Tally:
    """The facts of one span, each added where its own time falls; ``result`` gives the metrics."""

    def __init__(self) -> None:
        self.paid: list[PaymentFacts] = []
        self.failed = 0
        self.created: list[PaymentFacts] = []
        self.activation: list[float] = []
        self.received = 0
        self.by_webhook = 0
        self.processing: list[float] = []

    def result(self, services: bool = True) -> dict[str, Any]:
        paid = len(self.paid)
        rate = conversion(self.created)
        if not services:
            del rate["byService"]
        return {
            "paymentSuccessRate": ratio(paid, paid + self.failed, "paymentSuccessRate"),
            "webhookDeliveryRate": ratio(self.by_webhook, self.received, "webhookDeliveryRate"),
            "processingSeconds": durations(self.processing, "processingSeconds"),
            "activationSeconds": durations(self.activation, "activationSeconds"),
            "refundRate": ratio(sum(p.amount_refunded > 0 for p in self.paid), paid, "refundRate"),
            "conversionRate": rate,
            "revenue": revenue(self.paid),
        }


def revenue(paid: Iterable[PaymentFacts]) -> dict[str, dict[str, int]]:
    """Per currency (never summed across currencies), minor units: gross, refunded, disputeLost, net."""
    out: dict[str, dict[str, int]] = {}
    for p in paid:
        row = out.setdefault(p.currency.upper(), {"gross": 0, "refunded": 0, "disputeLost": 0, "net": 0})
        row["gross"] += p.amount
        row["refunded"] += p.amount_refunded
        row["disputeLost"] += p.dispute_lost
        row["net"] += p.amount - p.amount_refunded - p.dispute_lost
    return dict(sorted(out.items()))


def conversion(created: Sequence[PaymentFacts]) -> dict[str, Any]:
    """Intents created in the span → the share paid by now, overall and per service."""
    result = ratio(sum(map(_paid, created)), len(created), "conversionRate")
    services: dict[str, list[PaymentFacts]] = {}
    for p in created:
        services.setdefault(p.service_id or "", []).append(p)
    result["byService"] = [
        {
            "serviceId": service or None,
            "serviceName": next((p.service_name for p in group if p.service_name), None),
            "value": sum(map(_paid, group)) / len(group),
            "numerator": sum(map(_paid, group)),
            "denominator": len(group),
        }
        for service, group in sorted(services.items())
    ]
    return result


class Spans:
    """A window's whole span and its steps: ``at`` → the tallies it belongs to (none outside)."""

    def __init__(self, window: Window, now: datetime) -> None:
        self.start, self.end = window.start(now), now
        self.bounds = window.buckets(now)
        self.whole = Tally()
        self.steps = [Tally() for _ in self.bounds]
        self.first_edge = floor_to(self.start, window.step)
        self.step = window.step

    def of(self, at: datetime | None) -> tuple[Tally, ...]:
        if at is None:
            return ()
        at = aware(at)
        if not self.start <= at <= self.end:
            return ()
        index = min((at - self.first_edge) // self.step, len(self.steps) - 1)
        return (self.whole, self.steps[index])


def over_window(
    window: Window, now: datetime, payments: Sequence[PaymentFacts], events: Sequence[EventFacts]
) -> dict[str, Any]:
    """The metrics over ``[now - length, now]``, then the same per step (``series``), JSON-ready.

    Each fact counts where its own time falls: a payment paid in the window is in the success,
    refund and revenue figures whenever it was created; one created in it is in the conversion.
    """
    spans = Spans(window, now)
    for p in payments:
        if p.status in PAID:
            for tally in spans.of(p.paid_at):
                tally.paid.append(p)
        elif p.status in FAILED:
            for tally in spans.of(p.outcome_at):
                tally.failed += 1
        if p.paid_at is not None and p.activated_at is not None:
            seconds = _seconds(p.activated_at, p.paid_at)
            for tally in spans.of(p.activated_at):
                tally.activation.append(seconds)
        for tally in spans.of(p.created_at):
            tally.created.append(p)
    for e in events:
        took = None if e.processed_at is None else _seconds(e.processed_at, e.received_at)
        webhook = e.source != RECONCILE
        for tally in spans.of(e.received_at):
            tally.received += 1
            tally.by_webhook += webhook
            if took is not None:
                tally.processing.append(took)
    series = [
        {"start": iso(a), "end": iso(b), **tally.result(services=False)}
        for (a, b), tally in zip(spans.bounds, spans.steps, strict=True)
    ]
    return {
        "window": window.name,
        "start": iso(spans.start),
        "end": iso(now),
        "step": int(window.step.total_seconds()),
        **spans.whole.result(),
        "series": series,
    }


def iso(at: datetime) -> str:
    return aware(at).isoformat().replace("+00:00", "Z")
