"""The ingress's memory while it streams a 50,000-payment CSV export, against the same process idle.

    .venv/bin/python -m bench.export_memory     # this section alone, on a fresh stack
    (``python -m bench`` runs it last, after the drains)

One customer with ``EXPORT_ROWS`` payments in MongoDB; the ingress (``child/patient_ingress.py``:
the real app and server, with a MongoDB client patient enough for the stand-in) serves
``GET /api/payments/history/customer/export`` to a client that reads the body as it comes, while
this process samples the ingress's resident set size (``VmRSS``) every few milliseconds. Idle is
the median of samples taken after a first small request warmed the app up. The ratio peak/idle
near 1 says the export holds a chunk at a time, not the file. Not a test: nothing is asserted.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from bson import ObjectId

from bench.procstat import rss_mb
from bench.rig import Rig, alone
from devstack.demo import token

EXPORT_ROWS = 50_000
PATH = "/api/payments/history/customer/export"
#: Seconds between two RSS samples.
SAMPLE = 0.005


@dataclass(frozen=True)
class ExportMemory:
    rows: int  # CSV lines received, header excluded
    seconds: float  # from the request to the last byte
    first_row: float  # seconds to the first payment's row (the stand-in computes the query's whole answer first)
    megabytes: float  # of CSV received
    idle_mb: float
    peak_mb: float

    @property
    def ratio(self) -> float:
        return self.peak_mb / self.idle_mb if self.idle_mb > 0 else float("nan")

    def line(self) -> str:
        return (
            f"idle {self.idle_mb:.0f} MB, peak {self.peak_mb:.0f} MB while streaming {self.rows:,} rows "
            f"({self.megabytes:.1f} MB of CSV in {self.seconds:.1f} s, first row after {self.first_row:.1f} s)"
        )


def seed(db: Any, count: int) -> ObjectId:
    """A customer in ``users`` and ``count`` of their paid payments, a second apart."""
    customer: ObjectId = db.users.insert_one({"email": "export@example.test", "role": "customer"}).inserted_id
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, count, 5_000):
        db.payments.insert_many(
            [
                {
                    "paymentId": f"pi_export_{n}",
                    "customerId": customer,
                    "serviceName": f"Course {n % 50}",
                    "serviceType": "course",
                    "status": "completed",
                    "currency": "INR",
                    "amount": 49_900,
                    "amountRefunded": 0,
                    "paidAt": start + timedelta(seconds=n, milliseconds=500),
                    "createdAt": start + timedelta(seconds=n),
                }
                for n in range(first, min(count, first + 5_000))
            ]
        )
    return customer


def _samples(pid: int, seconds: float) -> list[float]:
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        found.append(rss_mb(pid))
        time.sleep(SAMPLE)
    return found


def measure_export(rig: Rig, count: int = EXPORT_ROWS) -> ExportMemory:
    """Seed, start the patient ingress, measure idle then during the export; leave the data cleared."""
    customer = seed(rig.db, count)
    url, pid = rig.start_patient_ingress()
    headers = {"Authorization": f"Bearer {token(customer, 'customer', rig.settings.jwt_secret)}"}
    try:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=120)) as client:
            client.get(PATH, params={"to": "2000-01-01"}, headers=headers).raise_for_status()  # warm-up, no rows
            idle = statistics.median(_samples(pid, 1.0))
            peak, done = [idle], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak.append(rss_mb(pid))
                    time.sleep(SAMPLE)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            began, first, received, lines = time.monotonic(), 0.0, 0, 0
            try:
                with client.stream("GET", PATH, headers=headers) as answer:
                    answer.raise_for_status()
                    for chunk in answer.iter_raw():
                        received += len(chunk)
                        lines += chunk.count(b"\n")
                        first = first or (time.monotonic() - began if lines > 1 else 0.0)
            finally:
                done.set()
                sampler.join()
            seconds = time.monotonic() - began
    finally:
        rig.stop_child("patient ingress")
        rig.clear_data()
    return ExportMemory(lines - 1, seconds, first, received / 1e6, idle, max(peak))


def main() -> int:
    """This section alone, on a fresh stack in a temporary folder."""
    result = alone("bench-export-", measure_export)
    print(f"Ingress RSS during a {EXPORT_ROWS:,}-payment CSV export: {result.line()}; peak/idle {result.ratio:.2f}")
    return 0


if __name__ == "__main__":
    from bench.target import use_code_root

    use_code_root()
    sys.exit(main())
