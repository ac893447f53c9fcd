"""Refunds end to end: real HTTP, the worker process, the local Stripe and SMTP (issue 8).

No refund is ever issued twice, whatever crashes, races or redeliveries happen on the way.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from devstack.pay import pay
from devstack.stack import Stack
from payments_ops import events
from payments_ops.config import LOCAL_STRIPE_KEY
from tests.e2e.shoppers import Shopper, new_shopper
from tests.support import mails_to, signed, wait_for

ROOT = Path(__file__).resolve().parents[2]


def paid_shopper(stack: Stack, http: httpx.Client, db: Any) -> tuple[Shopper, str]:
    """A customer who bought a 499 INR course and is enrolled, with both emails sent."""
    shopper = new_shopper(stack, db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    assert pay(stack.urls["stripe"], intent_id) == "succeeded"
    wait_for(lambda: (payment(db, intent_id) or {}).get("activatedAt"), 20, "activation")
    wait_for(lambda: len(mails(stack, shopper)) == 2, 20, "the enrollment emails")
    return shopper, intent_id


def payment(db: Any, intent_id: str) -> Any:
    return db.payments.find_one({"paymentId": intent_id})


def mails(stack: Stack, shopper: Shopper) -> list[Any]:
    return mails_to(stack.mail_dir, shopper.customer_email, shopper.specialist_email)


def stripe_refunds(stack: Stack, intent_id: str) -> list[Any]:
    client = stripe.StripeClient(LOCAL_STRIPE_KEY, base_addresses={"api": stack.urls["stripe"]}, max_network_retries=0)
    return list(client.v1.refunds.list(params={"payment_intent": intent_id}).auto_paging_iter())


def ask_refund(http: httpx.Client, shopper: Shopper, intent_id: str, **body: Any) -> httpx.Response:
    return http.post(f"/api/payments/{intent_id}/refund", json=body, headers=shopper.auth)


def test_a_partial_then_a_full_refund_through_the_api(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """Two Stripe refunds; partially_refunded then refunded; the enrollment cancelled; one email per refund a side."""
    shopper, intent_id = paid_shopper(stack, http, stack_db)
    first = ask_refund(http, shopper, intent_id, amount=20000, reason="requested_by_customer")
    assert first.status_code == 202 and first.json()["status"] == "pending", first.text
    wait_for(lambda: payment(stack_db, intent_id)["status"] == "partially_refunded", 20, "the partial refund")
    too_much = ask_refund(http, shopper, intent_id, amount=30000)
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (409, "not_refundable")
    assert ask_refund(http, shopper, intent_id, reason="changed my mind").status_code == 202  # the rest
    wait_for(lambda: payment(stack_db, intent_id)["status"] == "refunded", 20, "the full refund")
    assert sorted(r.amount for r in stripe_refunds(stack, intent_id)) == [20000, 29900]
    assert [r.reason for r in stripe_refunds(stack, intent_id) if r.amount == 20000] == ["requested_by_customer"]
    cancelled = {"customerId": shopper.customer_id, "status": "cancelled", "paymentStatus": "refunded"}
    wait_for(lambda: stack_db.enrollments.find_one(cancelled), 20, "the enrollment cancelled")
    wait_for(lambda: len(mails(stack, shopper)) == 6, 20, "two refund emails to each side")
    refund_mails = [m for m in mails(stack, shopper) if "refund" in str(m["Subject"]).lower()]
    assert sorted(str(m["To"]) for m in refund_mails) == sorted([shopper.customer_email, shopper.specialist_email] * 2)


def test_two_concurrent_full_refunds_make_one_stripe_refund(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """Two full refunds asked at once: one 202, one 409, and one refund at Stripe."""
    shopper, intent_id = paid_shopper(stack, http, stack_db)
    answers: list[int] = []
    start = threading.Barrier(2)

    def ask() -> None:
        with httpx.Client(base_url=stack.urls["ingress"], timeout=10) as client:
            start.wait()
            answers.append(ask_refund(client, shopper, intent_id).status_code)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(answers) == [202, 409]
    wait_for(lambda: payment(stack_db, intent_id)["status"] == "refunded", 20, "the refund")
    assert len(stripe_refunds(stack, intent_id)) == 1


def test_a_dashboard_refund_and_its_redelivered_event(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """A refund made in Stripe directly, then its signed charge.refunded twice: recorded once, enrollment cancelled."""
    shopper, intent_id = paid_shopper(stack, http, stack_db)
    client = stripe.StripeClient(LOCAL_STRIPE_KEY, base_addresses={"api": stack.urls["stripe"]}, max_network_retries=0)
    client.v1.refunds.create(params={"payment_intent": intent_id})  # the whole charge
    charge = {**events.fixture("charge"), "payment_intent": intent_id, "refunded": True, "amount_refunded": 49900}
    event = events.event("charge.refunded", charge)
    body, headers = signed(event, stack.webhook_secret)
    assert http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    wait_for(lambda: payment(stack_db, intent_id)["status"] == "refunded", 20, "the dashboard refund recorded")
    cancelled = {"customerId": shopper.customer_id, "status": "cancelled"}
    wait_for(lambda: stack_db.enrollments.find_one(cancelled), 20, "the enrollment cancelled")
    wait_for(lambda: len(mails(stack, shopper)) == 4, 20, "the refund emails")
    body, headers = signed(event, stack.webhook_secret)
    assert http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    wait_for(lambda: stack_db.stripe_events.find_one({"_id": event["id"]})["attempts"] == 2, 20, "the redelivery")
    after = payment(stack_db, intent_id)
    assert (after["amountRefunded"], len(after["refunds"])) == (49900, 1)
    assert len(mails(stack, shopper)) == 4


@pytest.mark.slow
def test_the_refunds_actor_killed_after_stripe_refunded_refunds_once(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """SIGKILL between Stripe's refund and its record: after redelivery, still exactly one Stripe refund."""
    shopper, intent_id = paid_shopper(stack, http, stack_db)
    stack.worker_args, stack.overrides = ("tests.e2e.crash_hook",), {**stack.overrides, "PYTHONPATH": str(ROOT)}
    try:
        stack.restart_part("worker")
        (stack.var / "crash-after-refund").touch()
        assert ask_refund(http, shopper, intent_id, amount=10000).status_code == 202
        worker = stack.children["worker"]
        wait_for(lambda: not worker.alive(), 30, "the worker to die after Stripe refunded")
        assert len(stripe_refunds(stack, intent_id)) == 1
        assert payment(stack_db, intent_id)["refunds"][0]["id"] is None  # nothing recorded
    finally:
        stack.worker_args = ()
        stack.restart_part("worker")
    wait_for(lambda: payment(stack_db, intent_id)["amountRefunded"] == 10000, 60, "the redelivered refund recorded")
    assert len(stripe_refunds(stack, intent_id)) == 1
    assert payment(stack_db, intent_id)["status"] == "partially_refunded"
