"""An email whose sending worker is killed must still go out within the redelivery limit (slow).

The worker is killed inside the send: the notification is claimed (``sending``), nothing was
sent. Its queue message comes back within seconds (``RequeueDeadWorkers``), but the redelivered
attempt finds the claim still leased and skips it; only the sweep takes it back, once the
outbox's 5-minute lease has run out. Were the kill after the SMTP server accepted the email,
the retry then would send it a second time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.pay import pay
from devstack.stack import Stack
from tests.faults import CRASH_WHILE_SENDING
from tests.faults.checks import Mailbox
from tests.faults.harness import REDELIVERY_LIMIT
from tests.faults.payments import PAID, LocalStripe, prepare, store
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def crashing_worker(fault_stack: Stack) -> Iterator[Stack]:
    """The worker with ``tests.faults.crash_hook`` loaded; the plain worker is back afterwards."""
    overrides = dict(fault_stack.overrides)
    fault_stack.worker_args = ("tests.faults.crash_hook",)
    fault_stack.overrides = {**overrides, "PYTHONPATH": str(ROOT)}
    try:
        fault_stack.restart_part("worker")
        yield fault_stack
    finally:
        (fault_stack.var / CRASH_WHILE_SENDING).unlink(missing_ok=True)
        fault_stack.worker_args, fault_stack.overrides = (), overrides
        fault_stack.restart_part("worker")


def test_an_email_claimed_by_a_killed_worker_goes_out_within_a_minute(
    crashing_worker: Stack, fault_db: Any, mailbox: Mailbox
) -> None:
    """Kill the worker inside an email send: that email still arrives, once, within the redelivery limit."""
    stack = crashing_worker
    stripe = LocalStripe(stack.urls["stripe"])
    try:
        [payment] = prepare(stripe, [PAID])
    finally:
        stripe.close()
    store(fault_db, [payment])
    worker = stack.children["worker"]
    (stack.var / CRASH_WHILE_SENDING).touch()
    assert pay(stack.urls["stripe"], payment.intent_id) == "succeeded"
    wait_for(lambda: not worker.alive(), 30, "the worker to die inside an email send")
    stack.worker_args = ()
    stack.restart_part("worker")
    claimed = {"context.payment_id": payment.intent_id, "status": "sending"}
    stuck = wait_for(lambda: fault_db.notifications.find_one(claimed), 10, "the claim the killed send left")

    def delivered() -> int:
        return sum(m.message_id == stuck["messageId"] for m in mailbox.mails())

    wait_for(delivered, REDELIVERY_LIMIT, "the email the killed worker had claimed")
    assert fault_db.notifications.find_one({"_id": stuck["_id"]})["status"] == "sent"
    assert delivered() == 1
