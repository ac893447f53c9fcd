"""Crashes and outages between the steps of a payment: nothing lost, nothing done twice (slow)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.pay import pay
from devstack.stack import Stack
from tests.e2e.shoppers import new_shopper
from tests.support import mails_to, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_a_worker_killed_between_activation_and_outbox_heals_on_redelivery(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """SIGKILL after the enrollment is active but before the emails: redelivery sends both, once."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    stack.worker_args, stack.overrides = ("tests.e2e.crash_hook",), {**stack.overrides, "PYTHONPATH": str(ROOT)}
    try:
        stack.restart_part("worker")
        (stack.var / "crash-before-outbox").touch()
        assert pay(stack.urls["stripe"], intent_id) == "succeeded"
        worker = stack.children["worker"]
        wait_for(lambda: not worker.alive(), 30, "the worker to crash")
        assert worker.proc is not None and worker.proc.returncode != 0  # Dramatiq stops when a worker dies
        assert stack_db.enrollments.find_one({"customerId": shopper.customer_id})["status"] == "active"
        assert mails_to(stack.mail_dir, shopper.customer_email, shopper.specialist_email) == []
    finally:
        stack.worker_args = ()
        stack.restart_part("worker")
    both = (shopper.customer_email, shopper.specialist_email)
    wait_for(lambda: len(mails_to(stack.mail_dir, *both)) == 2, 60, "both emails after redelivery")
    time.sleep(1)  # anything sent twice would have arrived by now
    assert len(mails_to(stack.mail_dir, *both)) == 2
    assert stack_db.enrollments.count_documents({"customerId": shopper.customer_id}) == 1
    assert stack_db.payments.find_one({"paymentId": intent_id})["status"] == "completed"


def test_emails_wait_out_an_smtp_outage_and_go_out_once(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """With the SMTP server down for a while the emails are retried and arrive once it is back."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    stack.stop_part("smtp")
    try:
        assert pay(stack.urls["stripe"], intent_id) == "succeeded"
        wait_for(lambda: stack_db.notifications.count_documents({"recipient": shopper.customer_email}), 20)
        time.sleep(3)
        assert mails_to(stack.mail_dir, shopper.customer_email) == []
    finally:
        stack.restart_part("smtp")
    both = (shopper.customer_email, shopper.specialist_email)
    wait_for(lambda: len(mails_to(stack.mail_dir, *both)) == 2, 60, "both emails after the outage")
    time.sleep(1)
    assert len(mails_to(stack.mail_dir, *both)) == 2
