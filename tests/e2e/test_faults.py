"""Crashes and outages between the steps of a payment: nothing lost, nothing done twice (slow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from adapters.queue import EMAILS_QUEUE
from devstack.pay import pay
from devstack.stack import Stack
from tests.e2e.shoppers import new_shopper
from tests.support import mails_to, queued_messages, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def settled(db: Any, redis_client: redis.Redis, *recipients: str) -> None:
    """Wait until the recipients' emails are all ``sent`` and no emails message is left to act
    (queued, delayed or in flight): only then can "nothing sent twice" be asserted."""

    def done() -> bool:
        unsent = db.notifications.count_documents({"recipient": {"$in": recipients}, "status": {"$ne": "sent"}})
        left = sum(len(queued_messages(redis_client, queue)) for queue in (EMAILS_QUEUE, f"{EMAILS_QUEUE}.DQ"))
        return unsent == 0 and left == 0

    wait_for(done, 60, "every email sent and its queue empty")


def test_a_worker_killed_between_activation_and_outbox_heals_on_redelivery(
    stack: Stack, http: httpx.Client, stack_db: Any, stack_redis: redis.Redis
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
    settled(stack_db, stack_redis, *both)
    assert len(mails_to(stack.mail_dir, *both)) == 2
    assert stack_db.enrollments.count_documents({"customerId": shopper.customer_id}) == 1
    assert stack_db.payments.find_one({"paymentId": intent_id})["status"] == "completed"


def test_emails_wait_out_an_smtp_outage_and_go_out_once(
    stack: Stack, http: httpx.Client, stack_db: Any, stack_redis: redis.Redis
) -> None:
    """With the SMTP server down for a while the emails are retried and arrive once it is back."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    stack.stop_part("smtp")
    try:
        assert pay(stack.urls["stripe"], intent_id) == "succeeded"
        refused = {"recipient": shopper.customer_email, "status": "pending", "attempts": {"$gte": 1}}
        wait_for(lambda: stack_db.notifications.find_one(refused), 20, "a send refused by the closed port")
        assert mails_to(stack.mail_dir, shopper.customer_email) == []
    finally:
        stack.restart_part("smtp")
    both = (shopper.customer_email, shopper.specialist_email)
    wait_for(lambda: len(mails_to(stack.mail_dir, *both)) == 2, 60, "both emails after the outage")
    settled(stack_db, stack_redis, *both)
    assert len(mails_to(stack.mail_dir, *both)) == 2
