"""The success metrics' arithmetic (domain/success_metrics.py): windows, rates, percentiles, revenue."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.success_metrics import WINDOWS, EventFacts, PaymentFacts, Target, over_window, percentile
from tests.support import wait_for
from usecases.success_metrics import FRESH_FOR, LEASE, CachedMeasure, UnknownWindow, measure

NOW = datetime(2026, 3, 4, 12, 34, 56, tzinfo=UTC)


def paid(minutes_ago: float, amount: int = 1000, currency: str = "INR", **more: object) -> PaymentFacts:
    at = NOW - timedelta(minutes=minutes_ago)
    fields: dict[str, object] = {"created_at": at - timedelta(minutes=1), "paid_at": at, **more}
    return PaymentFacts(status=str(fields.pop("status", "completed")), amount=amount, currency=currency, **fields)  # type: ignore[arg-type]


def failed(minutes_ago: float) -> PaymentFacts:
    at = NOW - timedelta(minutes=minutes_ago)
    return PaymentFacts(created_at=at, status="failed", amount=1000, currency="INR", outcome_at=at)


class Facts:
    def __init__(self, payments: list[PaymentFacts], events: list[EventFacts]) -> None:
        self.payments_, self.events_, self.asked = payments, events, 0

    def payments(self, start: datetime, end: datetime) -> list[PaymentFacts]:
        self.asked += 1
        return self.payments_

    def events(self, start: datetime, end: datetime) -> list[EventFacts]:
        return self.events_


def test_an_empty_window_claims_nothing() -> None:
    """No payment, no event: every value and every verdict is None (not 0, not 100 %), counts are 0."""
    result = measure(Facts([], []), "24h", now=NOW)
    for key in ("paymentSuccessRate", "webhookDeliveryRate", "refundRate", "conversionRate"):
        assert (result[key]["value"], result[key]["ok"], result[key]["denominator"]) == (None, None, 0)
    for key in ("processingSeconds", "activationSeconds"):
        assert (result[key]["mean"], result[key]["p95"], result[key]["ok"], result[key]["count"]) == (
            None,
            None,
            None,
            0,
        )
    assert result["revenue"] == {}
    assert result["conversionRate"]["byService"] == []


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 0.95) == pytest.approx(95.05)


def test_targets_at_their_bounds() -> None:
    """≥ 0.98 holds at 0.98; a mean < 2 s does not hold at 2 s."""
    assert Target(0.98, at_least=True).met(0.98) is True
    assert Target(0.98, at_least=True).met(0.9799) is False
    assert Target(2.0, at_least=False, strict=True).met(2.0) is False
    assert Target(0.02, at_least=False).met(0.02) is True


def test_currencies_are_kept_apart_and_net_takes_refunds_and_lost_disputes() -> None:
    payments = [
        paid(10, 1000, "INR"),
        paid(20, 2000, "inr", amount_refunded=500),
        paid(30, 5000, "USD", status="dispute_lost", dispute_lost=5000),
    ]
    revenue = measure(Facts(payments, []), "1h", now=NOW)["revenue"]
    assert revenue == {
        "INR": {"gross": 3000, "refunded": 500, "disputeLost": 0, "net": 2500},
        "USD": {"gross": 5000, "refunded": 0, "disputeLost": 5000, "net": 0},
    }


def test_each_fact_counts_where_its_own_time_falls() -> None:
    """Paid 2 h ago: outside 1h, inside 24h, in the step of its hour; a failed one counts against the rate."""
    payments = [paid(10), paid(120, amount_refunded=1), failed(5)]
    hour, day = measure(Facts(payments, []), "1h", now=NOW), measure(Facts(payments, []), "24h", now=NOW)
    assert (hour["paymentSuccessRate"]["numerator"], hour["paymentSuccessRate"]["denominator"]) == (1, 2)
    assert (day["paymentSuccessRate"]["numerator"], day["paymentSuccessRate"]["denominator"]) == (2, 3)
    assert (day["refundRate"]["numerator"], day["refundRate"]["denominator"]) == (1, 2)
    steps = [s for s in day["series"] if s["paymentSuccessRate"]["denominator"]]
    assert [(s["start"], s["paymentSuccessRate"]["numerator"]) for s in steps] == [
        ("2026-03-04T10:00:00Z", 1),
        ("2026-03-04T12:00:00Z", 1),
    ]
    assert sum(s["paymentSuccessRate"]["denominator"] for s in day["series"]) == 3


def test_the_series_steps_cover_the_window() -> None:
    """1h in 5-minute steps, 24h per hour, 7d and 30d per day (UTC), the first step clipped to the window."""
    for name, count in (("1h", 13), ("24h", 25), ("7d", 8), ("30d", 31)):
        series = over_window(WINDOWS[name], NOW, [], [])["series"]
        assert len(series) == count
        assert series[0]["start"] == (NOW - WINDOWS[name].length).isoformat().replace("+00:00", "Z")
        assert series[-1]["end"] == NOW.isoformat().replace("+00:00", "Z")
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(series))


def test_delivery_processing_and_activation() -> None:
    events = [
        EventFacts(NOW - timedelta(minutes=3), NOW - timedelta(minutes=3) + timedelta(seconds=1)),
        EventFacts(NOW - timedelta(minutes=2), NOW - timedelta(minutes=2) + timedelta(seconds=3), "reconcile"),
        EventFacts(NOW - timedelta(minutes=1)),  # not processed yet: received, not timed
    ]
    at = NOW - timedelta(minutes=4)
    payments = [paid(4, activated_at=at + timedelta(seconds=6)), paid(4, activated_at=at + timedelta(seconds=2))]
    result = measure(Facts(payments, events), "1h", now=NOW)
    delivery = result["webhookDeliveryRate"]
    assert (delivery["numerator"], delivery["denominator"], delivery["ok"]) == (2, 3, False)
    processing = result["processingSeconds"]
    assert (processing["mean"], processing["p50"], processing["count"], processing["ok"]) == (2.0, 2.0, 2, False)
    activation = result["activationSeconds"]
    assert (activation["mean"], activation["p95"], activation["ok"]) == (4.0, pytest.approx(5.8), True)


def test_conversion_per_service() -> None:
    created = NOW - timedelta(minutes=5)
    payments = [
        PaymentFacts(created, "completed", 1, "INR", paid_at=created, service_id="a", service_name="Yoga"),
        PaymentFacts(created, "pending", 1, "INR", service_id="a", service_name="Yoga"),
        PaymentFacts(created, "failed", 1, "INR", service_id="b", service_name="Chess", outcome_at=created),
    ]
    conversion = measure(Facts(payments, []), "1h", now=NOW)["conversionRate"]
    assert (conversion["numerator"], conversion["denominator"], conversion["target"]) == (1, 3, None)
    assert [(s["serviceName"], s["numerator"], s["denominator"]) for s in conversion["byService"]] == [
        ("Yoga", 1, 2),
        ("Chess", 0, 1),
    ]


def test_an_unknown_window_is_refused() -> None:
    with pytest.raises(UnknownWindow, match="1h, 24h, 7d, 30d"):
        measure(Facts([], []), "2h", now=NOW)


class Snapshots:
    """A dumb store of each window's last measurement and its claim (one per window, like the document)."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self.claims: dict[str, tuple[str, datetime]] = {}

    def load(self, window: str) -> tuple[datetime, dict[str, Any]] | None:
        return self.kept.get(window)

    def claim(self, window: str, holder: str, now: datetime, lease: timedelta) -> bool:
        held = self.claims.get(window)
        if held is not None and held[1] > now:
            return False
        self.claims[window] = (holder, now + lease)
        return True

    def save(self, window: str, measured_at: datetime, result: Mapping[str, Any]) -> None:
        if window not in self.kept or self.kept[window][0] < measured_at:
            self.kept[window] = (measured_at, dict(result))
        self.claims.pop(window, None)


def cache(facts: Facts, snapshots: Snapshots, clock: list[datetime], holder: str = "one") -> CachedMeasure:
    return CachedMeasure(facts, snapshots, holder, ttl={**FRESH_FOR, "1h": 30}, clock=lambda: clock[0])


def test_the_cache_serves_a_fresh_answer_without_asking_again() -> None:
    facts, clock = Facts([paid(5)], []), [NOW]
    cached = cache(facts, Snapshots(), clock)
    first = cached.get("1h")
    clock[0] = NOW + timedelta(seconds=29)
    assert cached.get("1h") is first and facts.asked == 1


def test_a_stale_answer_is_served_while_one_thread_computes_the_next() -> None:
    facts, clock = Facts([paid(5)], []), [NOW]
    cached = cache(facts, Snapshots(), clock)
    first = cached.get("1h")
    facts.payments_ = [paid(5), paid(6)]
    clock[0] = NOW + timedelta(seconds=31)
    assert cached.get("1h") is first  # served at once, stale
    wait_for(lambda: cached.kept["1h"][1] is not first, 5, "a refresh")
    assert cached.get("1h")["paymentSuccessRate"]["numerator"] == 2 and facts.asked == 2


def test_a_process_just_started_serves_what_another_measured_without_reading_payments() -> None:
    snapshots, clock = Snapshots(), [NOW]
    cache(Facts([paid(5), paid(6)], []), snapshots, clock, "worker").refresh("1h")
    cold = Facts([], [])
    assert cache(cold, snapshots, clock, "ingress").get("1h")["paymentSuccessRate"]["numerator"] == 2
    assert cold.asked == 0


def test_one_process_measures_a_stale_window_while_it_holds_the_claim() -> None:
    snapshots, clock = Snapshots(), [NOW]
    facts = [Facts([paid(5)], []) for _ in range(3)]
    first, second, third = (cache(f, snapshots, clock, f"worker-{n}") for n, f in enumerate(facts))
    assert first.refresh("1h") and not second.refresh("1h")  # fresh: nothing to do
    clock[0] = NOW + timedelta(seconds=31)
    assert snapshots.claim("1h", "worker-1", clock[0], LEASE)  # the second process is measuring it now
    assert not first.refresh("1h") and not third.refresh("1h") and [f.asked for f in facts] == [1, 0, 0]
    clock[0] += LEASE  # it died with the claim: once the lease ran out, another takes it over
    assert third.refresh("1h") and [f.asked for f in facts] == [1, 0, 1]


def test_a_command_gets_a_fresh_measurement_and_keeps_it() -> None:
    snapshots, clock = Snapshots(), [NOW]
    cache(Facts([paid(5)], []), snapshots, clock, "worker").refresh("1h")
    command = Facts([paid(5), paid(6)], [])
    assert cache(command, snapshots, clock, "ops").current("1h")["paymentSuccessRate"]["numerator"] == 1
    clock[0] = NOW + timedelta(seconds=31)  # stale: measured now, and kept for the others
    assert cache(command, snapshots, clock, "ops").current("1h")["paymentSuccessRate"]["numerator"] == 2
    assert snapshots.kept["1h"][0] == clock[0] and command.asked == 1
