"""Reconcile against the local Stripe (issue 9): payments whose webhooks never came are completed by it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from devstack.pay import pay
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


@contextmanager
def lost_webhooks() -> Iterator[tuple[str, list[str]]]:
    """Where webhooks are lost: a server answering 400 to each, keeping the intent ids it was told of.

    The local Stripe sends a webhook a moment after the call that caused it: the test waits until
    each was lost here before pointing the webhooks back, or a late one would reach the ingress.
    """
    seen: list[str] = []

    class Lose(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            event = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            seen.append(str(((event.get("data") or {}).get("object") or {}).get("id")))
            self.send_response(400)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Lose)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/webhooks/stripe", seen
    finally:
        server.shutdown()
        server.server_close()


def test_reconcile_completes_payments_whose_webhooks_were_lost(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """Paid while webhooks went nowhere: reconcile queues Stripe's events; processed events are left alone."""
    _, done_intent = paid_shopper(stack, http, stack_db)  # its webhook came: processed already
    done_event = stack_db.stripe_events.find_one({"objectId": done_intent})
    with lost_webhooks() as (nowhere, seen):
        point_webhooks_at(stack, nowhere)
        try:
            lost = []
            for _ in range(3):
                shopper = new_shopper(stack, stack_db)
                intent_id = shopper.create_intent(http).json()["paymentId"]
                assert pay(stack.urls["stripe"], intent_id) == "succeeded"
                lost.append(intent_id)
            wait_for(lambda: set(lost) <= set(seen), 15, "the three payments' webhooks to be lost")
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
