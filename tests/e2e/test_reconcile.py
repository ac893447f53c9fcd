"""Reconcile against the local Stripe (issue 9): payments whose webhooks never came are completed by it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import httpx

from devstack.pay import pay
from devstack.procs import free_port
from devstack.stack import Stack
from tests.e2e.shoppers import new_shopper
from tests.e2e.test_refunds import paid_shopper
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


def point_webhooks_at(stack: Stack, url: str) -> None:
    """Where the local Stripe sends its webhooks (a closed port loses them, as an outage would)."""
    form = urllib.parse.urlencode({"url": url, "secret": stack.webhook_secret}).encode()
    request = urllib.request.Request(stack.urls["stripe"] + "/_config/webhooks/payments-pipeline", data=form)
    with urllib.request.urlopen(request, timeout=5):
        pass


def test_reconcile_completes_payments_whose_webhooks_were_lost(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """Paid while webhooks went nowhere: reconcile queues Stripe's events; processed events are left alone."""
    _, done_intent = paid_shopper(stack, http, stack_db)  # its webhook came: processed already
    done_event = stack_db.stripe_events.find_one({"objectId": done_intent})
    point_webhooks_at(stack, f"http://127.0.0.1:{free_port()}/api/webhooks/stripe")
    try:
        lost = []
        for _ in range(3):
            shopper = new_shopper(stack, stack_db)
            intent_id = shopper.create_intent(http).json()["paymentId"]
            assert pay(stack.urls["stripe"], intent_id) == "succeeded"
            lost.append(intent_id)
    finally:
        point_webhooks_at(stack, stack.urls["ingress"] + "/api/webhooks/stripe")
    assert stack_db.payments.count_documents({"paymentId": {"$in": lost}, "status": "pending"}) == 3
    env = {**stack.app_env(), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "payments_ops", "reconcile", "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["events_enqueued"] >= 3 and report["events_seen"] >= 4
    activated = {"paymentId": {"$in": lost}, "status": "completed", "activatedAt": {"$ne": None}}
    wait_for(lambda: stack_db.payments.count_documents(activated) == 3, 30, "the lost payments activated")
    after = stack_db.stripe_events.find_one({"_id": done_event["_id"]})
    assert (after["status"], after["attempts"]) == ("processed", done_event["attempts"])  # left alone
