"""Benchmark: how fast ops replay failed jobs, and how long reconcile takes over 1,000 Stripe events.

    .venv/bin/python bench/ops_figures.py [--failures 1000] [--payments 1000]

On a fresh local stack (Redis, the MongoDB stand-in, the local Stripe; no worker, so nothing is
consumed while measuring):
  1. baseline: plain signed enqueues of the same messages, per second;
  2. replay: ``--failures`` dead ``job_failures`` records replayed without a rate limit, per second
     (each: read, signature check, fresh copy enqueued, record marked, dead letter dropped);
  3. reconcile: ``--payments`` intents paid in the local Stripe with their webhooks lost, then one
     reconcile run: seconds, events seen and queued.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stripe
from bson import ObjectId
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.deps import build_deps, build_ops
from adapters.mongo import now
from adapters.queue import build_broker, event_message, send
from adapters.settings import load_settings
from devstack.procs import free_port
from devstack.stack import Stack
from payments_ops import events
from payments_ops.config import LOCAL_STRIPE_KEY
from payments_ops.simulate import pending_payment
from usecases import ops
from usecases.ports import FailureSelection, Operator
from usecases.reconcile import reconcile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), {"APP_ENV": "development"}, ingress_port=free_port())
        stack.start_parts(("redis", "mongo", "stripe"))
        stack.urls["smtp"] = "smtp://127.0.0.1:1"  # nothing is sent here
        settings = load_settings(stack.app_env(), dotenv=None)
        client: MongoClient[dict[str, Any]] = MongoClient(stack.urls["mongo"], tz_aware=True)
        db = client[settings.mongodb_db]
        broker = build_broker(settings)
        try:
            messages = [
                event_message(events.event("payment_intent.succeeded", {"id": f"pi_{i}"})) for i in range(args.failures)
            ]
            started = time.perf_counter()
            messages = [send(broker, message) for message in messages]  # as enqueued: signed
            baseline = len(messages) / (time.perf_counter() - started)
            broker.flush_all()
            db.job_failures.insert_many(
                [
                    {
                        "_id": ObjectId(),
                        "messageId": m.message_id,
                        "queue": "stripe-events",
                        "actor": m.actor_name,
                        "message": m.encode().decode(),
                        "error": "RetryLater: bench",
                        "state": "dead",
                        "lastFailedAt": now(),
                        "redisMessageId": m.options.get("redis_message_id"),
                    }
                    for m in messages
                ]
            )
            deps = build_ops(settings, db, broker)
            started = time.perf_counter()
            result = ops.replay(FailureSelection(), deps, who=Operator("bench", "bench"), dry_run=False)
            replay_rate = result.done / (time.perf_counter() - started)
            broker.flush_all()

            payer = stripe.StripeClient(LOCAL_STRIPE_KEY, base_addresses={"api": stack.urls["stripe"]})
            created = time.perf_counter()
            for _ in range(args.payments):  # no webhook is registered: every event is "lost"
                doc = pending_payment(events.new_id("pi"))
                intent = payer.v1.payment_intents.create(
                    params={"amount": doc["amount"], "currency": "inr", "metadata": events.intent_metadata(doc)}
                )
                payer.v1.payment_intents.update(intent.id, params={"payment_method": "pm_card_visa"})
                payer.v1.payment_intents.confirm(intent.id)
            setup = time.perf_counter() - created
            core = build_deps(settings, db, broker)
            started = time.perf_counter()
            report = reconcile(core, now=datetime.now(UTC))
            took = time.perf_counter() - started
        finally:
            broker.close()
            client.close()
            stack.stop()
    print(f"enqueue baseline (signed, same messages): {baseline:8.0f} messages/s")
    ratio = replay_rate / baseline
    print(f"replay, no rate limit:                    {replay_rate:8.0f} failures/s ({ratio:.2f}x baseline)")
    print(f"reconcile: {report.events_seen} events seen, {report.events_enqueued} queued in {took:.2f} s"
          f" ({report.events_seen / took:.0f} events/s; {args.payments} payments set up in {setup:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
