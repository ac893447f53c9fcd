"""The success metrics at 100,000 payments: one page load of the API and of the dashboard page, against a baseline.

    .venv/bin/python -m bench.success_pages     # this section alone, on a fresh stack
    (``python -m bench`` runs it after the export)

``PAYMENTS`` payments spread over the last 30 days (90 % paid, with their ``payment_intent.succeeded``
events, 0.5 % of them found by reconcile; 7 % failed; the rest pending) in the stack's MongoDB (the
stand-in); the ingress (``child/patient_ingress.py``, with ``OPS_TOKEN``) serves them. Measured,
each window in turn: its first measurement ever (``measured``: computed from MongoDB, what a worker
does in the background and an ingress only when nothing was ever kept); then the ingress is
restarted and, each window in turn, its first load (``cold``: a new process serving the kept
measurement) and ``LOADS`` loads of ``GET /ops/api/success-metrics?window=W`` and of
``GET /ops/metrics?window=W`` (``warm``, rendered each time), against ``LOADS`` loads of
``GET /ops/api/queues`` (the baseline: a small ops answer through the same app) in the same run.
Medians, and the ratio of each to the baseline's. No worker runs. Not a test: nothing is asserted.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
from bson import ObjectId

from bench.rig import Rig, alone

PAYMENTS = 100_000
LOADS = 20
TOKEN = "bench-ops-token-of-at-least-thirty-two-bytes"
WINDOWS = ("1h", "24h", "7d", "30d")


@dataclass
class SuccessPages:
    payments: int
    baseline: float  # median seconds of GET /ops/api/queues
    measured: dict[str, float] = field(default_factory=dict)  # window -> seconds of its first measurement ever
    cold: dict[str, float] = field(default_factory=dict)  # window -> seconds of a restarted ingress's first load
    api: dict[str, float] = field(default_factory=dict)  # window -> median seconds, warm
    page: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"baseline GET /ops/api/queues: {self.baseline * 1000:.1f} ms (median of {LOADS})"]
        for window in WINDOWS:
            api, page, cold = self.api[window], self.page[window], self.cold[window]
            out.append(
                f"window {window}: API {api * 1000:.1f} ms ({api / self.baseline:.1f}x baseline), "
                f"page {page * 1000:.1f} ms ({page / self.baseline:.1f}x); a restarted ingress's first load "
                f"{cold * 1000:.1f} ms ({cold / self.baseline:.1f}x); first measurement ever, computed from "
                f"MongoDB: {self.measured[window]:.2f} s"
            )
        return out


def seed(db: Any, count: int, now: datetime) -> None:
    """``count`` payments over the last 30 days and the events of the paid ones, inserted in batches."""
    rnd = random.Random(21)
    services = [(ObjectId(), f"Course {n}") for n in range(5)]
    step = timedelta(days=30) / count
    for first in range(0, count, 5_000):
        payments, events = [], []
        for n in range(first, min(count, first + 5_000)):
            created = now - timedelta(days=30) + n * step
            draw = rnd.random()
            status = "completed" if draw < 0.9 else "failed" if draw < 0.97 else "pending"
            service_id, name = services[n % 5]
            doc = {"_id": ObjectId(), "paymentId": f"pi_bench{n}", "status": status, "amount": 49_900,
                   "currency": "INR" if n % 3 else "USD", "amountRefunded": 4_900 if n % 97 == 0 else 0,
                   "serviceId": service_id, "serviceName": name, "createdAt": created,
                   "updatedAt": created + timedelta(seconds=5)}  # fmt: skip
            if status == "completed":
                paid = created + timedelta(seconds=3)
                doc.update(paidAt=paid, activatedAt=paid + timedelta(seconds=rnd.uniform(0.5, 4)))
                events.append({"_id": f"evt_bench{n}", "type": "payment_intent.succeeded", "status": "processed",
                               "receivedAt": paid, "processedAt": paid + timedelta(seconds=rnd.uniform(0.1, 1.5)),
                               "source": "reconcile" if n % 200 == 0 else "webhook",
                               "payload": {"id": f"evt_bench{n}"}})  # fmt: skip
            payments.append(doc)
        db.payments.insert_many(payments)
        if events:
            db.stripe_events.insert_many(events)


def _median(call: Callable[[], httpx.Response], times: int = LOADS) -> float:
    took = []
    for _ in range(times):
        began = time.perf_counter()
        call().raise_for_status()
        took.append(time.perf_counter() - began)
    return statistics.median(took)


def _first_load(client: httpx.Client, window: str, auth: dict[str, str]) -> float:
    began = time.perf_counter()
    client.get("/ops/api/success-metrics", params={"window": window}, headers=auth).raise_for_status()
    return time.perf_counter() - began


def measure_success_pages(rig: Rig, count: int = PAYMENTS) -> SuccessPages:
    """Seed, start the patient ingress with an ops token and a dashboard session, load.

    The data stays (clearing 100,000 payments from the stand-in takes longer than the loads): it runs last."""
    from adapters.ops_sessions import MongoOpsSessions

    say = partial(print, file=sys.stderr, flush=True)
    say(f"seeding {count:,} payments")
    seed(rig.db, count, datetime.now(UTC))
    rig.db.success_metrics.delete_many({})  # measured by the stack's worker at its boot, before the seed
    session_id, _ = MongoOpsSessions(rig.db).create("bench", timedelta(hours=1), None)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    measured: dict[str, float] = {}
    try:
        url, _pid = rig.start_patient_ingress({"OPS_TOKEN": TOKEN})
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=300)) as client:
            for window in WINDOWS:
                say(f"window {window}: first measurement")
                measured[window] = _first_load(client, window, auth)
        rig.stop_child("patient ingress")
        url, _pid = rig.start_patient_ingress({"OPS_TOKEN": TOKEN})
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=300)) as client:
            client.cookies.set("ops_session", session_id)
            client.get("/ops/api/queues", headers=auth).raise_for_status()  # warm-up
            result = SuccessPages(count, _median(lambda: client.get("/ops/api/queues", headers=auth)), measured)
            for window in WINDOWS:
                say(f"window {window}: loads of a restarted ingress")
                result.cold[window] = _first_load(client, window, auth)
                params, html = {"window": window}, {"Accept": "text/html"}
                result.api[window] = _median(
                    partial(client.get, "/ops/api/success-metrics", params=params, headers=auth)
                )
                result.page[window] = _median(partial(client.get, "/ops/metrics", params=params, headers=html))
    finally:
        rig.stop_child("patient ingress")
    return result


def main() -> int:
    """This section alone, on a fresh stack in a temporary folder."""
    result = alone("bench-success-", measure_success_pages)
    print(f"Success metrics at {result.payments:,} payments (the MongoDB stand-in):")
    print("\n".join(f"- {line}" for line in result.lines()))
    return 0


if __name__ == "__main__":
    from bench.target import use_code_root

    use_code_root()
    sys.exit(main())
