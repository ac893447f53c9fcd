"""Benchmark: refund request (POST /api/payments/{id}/refund) → refund recorded on the payment.

    .venv/bin/python bench/refund_latency.py [--payments 40]

On a fresh local stack: pays ``--payments`` intents through the local Stripe, then asks each for a
partial refund, one at a time, and measures from the POST until the payment's ``amountRefunded``
shows it (the API's reservation, the signed message, the refunds actor listing the intent's
refunds, Stripe's refund, the record, the status move). Prints p50/p90/max in milliseconds and,
as the baseline measured in the same run, the latency of the same path's first hop alone (the
POST answered 202). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.demo import token
from devstack.pay import pay
from devstack.procs import free_port
from devstack.stack import Stack

TUNING = {"WORKER_PROCESSES": "1", "WORKER_THREADS": "8", "LOG_LEVEL": "WARNING", "RATE_LIMIT_PER_MINUTE": "100000"}


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p90 {p90:7.1f} ms   max {ordered[-1]:7.1f} ms"


def buy(http: httpx.Client, stack: Stack, db: Any) -> tuple[str, str]:
    """A customer who bought a course (the payment completed); returns their JWT and the intent id."""
    specialist = db.users.insert_one({"email": "s@bench.test", "role": "specialist"}).inserted_id
    customer = db.users.insert_one({"email": "c@bench.test", "role": "customer"}).inserted_id
    service = db.services.insert_one(
        {"name": "Bench", "type": "course", "price": 499, "currency": "INR", "specialistId": specialist, "active": True}
    ).inserted_id
    jwt = token(customer, "customer", stack.app_env()["JWT_SECRET"])
    answer = http.post(
        "/api/payments/create-intent",
        json={"serviceId": str(service), "serviceType": "course"},
        headers={"Authorization": f"Bearer {jwt}"},
    )
    intent_id = str(answer.json()["paymentId"])
    pay(stack.urls["stripe"], intent_id)
    return jwt, intent_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), {"APP_ENV": "development"}, ingress_port=free_port(), overrides=TUNING)
        stack.start()
        client: MongoClient[dict[str, Any]] = MongoClient(stack.urls["mongo"], tz_aware=True)
        db = client[stack.environ.get("MONGODB_DB") or "app"]
        try:
            with httpx.Client(base_url=stack.urls["ingress"], timeout=30) as http:
                bought = [buy(http, stack, db) for _ in range(args.payments)]
                deadline = time.monotonic() + 60
                while db.payments.count_documents({"activatedAt": {"$ne": None}}) < len(bought):
                    if time.monotonic() > deadline:
                        raise SystemExit("payments were not activated within 60 s")
                    time.sleep(0.05)
                accepted, recorded = [], []
                for jwt, intent_id in bought:
                    started = time.perf_counter()
                    answer = http.post(
                        f"/api/payments/{intent_id}/refund",
                        json={"amount": 10000},
                        headers={"Authorization": f"Bearer {jwt}"},
                    )
                    accepted.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 202, answer.text
                    while not db.payments.find_one({"paymentId": intent_id, "amountRefunded": 10000}, {"_id": 1}):
                        time.sleep(0.002)
                    recorded.append((time.perf_counter() - started) * 1000)
            print(f"refunds measured: {len(recorded)} (one at a time, 1 worker process x 8 threads)")
            print(f"request answered (202, baseline): {percentiles(accepted)}")
            print(f"request -> refund recorded:       {percentiles(recorded)}")
            ratio = statistics.median(recorded) / statistics.median(accepted)
            print(f"ratio of medians: {ratio:.1f}x the API's own answer")
        finally:
            client.close()
            stack.stop()


if __name__ == "__main__":
    main()
