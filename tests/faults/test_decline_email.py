"""A decline's email that stopped being true before it was sent is never sent (slow).

The race measured before the guard: a declined-then-paid payment whose older
``payment_failed`` runs first leaves a "payment failed" email queued while the success
completes the payment. Here the SMTP server is kept from taking the email, deterministically,
until the success has been processed: closed (each attempt fails and the email waits for the
next), or stalled (one attempt is under way, waiting for the server's greeting).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.pay import pay
from devstack.procs import Child, free_port, python_module
from devstack.stack import HOST, Stack
from payments_ops import events
from tests.faults.checks import Mailbox
from tests.faults.payments import RETRIED, THREE_D_SECURE, LocalStripe, Payment, prepare, store
from tests.faults.smtp_stall import StalledSmtp
from tests.support import signed, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def stripe(fault_stack: Stack) -> Iterator[LocalStripe]:
    client = LocalStripe(fault_stack.urls["stripe"])
    yield client
    client.close()


def decline(stack: Stack, stripe: LocalStripe, db: Any) -> Payment:
    """A stored payment whose 3-D Secure challenge just failed, its signed ``payment_failed`` delivered."""
    [payment] = prepare(stripe, [RETRIED])
    store(db, [payment])
    declined = stripe.fail_authentication(payment.intent_id, stripe.card(THREE_D_SECURE))
    event = events.event("payment_intent.payment_failed", declined, created=int(time.time()))
    body, headers = signed(event, stack.webhook_secret)
    answer = httpx.post(stack.urls["ingress"] + "/api/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return payment


def complete(stripe: LocalStripe, db: Any, payment: Payment) -> None:
    """Pay with a card; wait until the success is processed and the payment activated."""
    assert pay(stripe.url, payment.intent_id, "pm_card_visa") == "succeeded"
    completed = {"paymentId": payment.intent_id, "status": "completed", "activatedAt": {"$ne": None}}
    wait_for(lambda: db.payments.find_one(completed), 30, "the payment completed by its success")


def decline_email(db: Any, payment: Payment, **state: Any) -> Any:
    return db.notifications.find_one({"context.payment_id": payment.intent_id, "template": "payment_failed", **state})


def test_a_decline_email_waiting_when_the_payment_succeeds_is_cancelled_not_sent(
    fault_stack: Stack, fault_db: Any, mailbox: Mailbox, stripe: LocalStripe
) -> None:
    """Decline processed, its email refused by a closed SMTP port, then the success: the email is cancelled."""
    fault_stack.stop_part("smtp")
    try:
        payment = decline(fault_stack, stripe, fault_db)
        refused = {"status": "pending", "attempts": {"$gte": 1}}
        wait_for(lambda: decline_email(fault_db, payment, **refused), 30, "the decline's email refused once")
        complete(stripe, fault_db, payment)
        email = wait_for(lambda: decline_email(fault_db, payment, status="cancelled"), 30, "the email cancelled")
    finally:
        fault_stack.restart_part("smtp")
    welcome = {"context.payment_id": payment.intent_id, "template": "enrollment_confirmation", "status": "sent"}
    wait_for(lambda: fault_db.notifications.find_one(welcome), 60, "the enrollment email sent")
    assert decline_email(fault_db, payment)["status"] == "cancelled"
    assert [m for m in mailbox.mails() if m.message_id == email["messageId"]] == []


@pytest.fixture
def stalled_smtp(fault_stack: Stack) -> Iterator[StalledSmtp]:
    """The SMTP port held by a server that stalls until released, then relays to a real sink."""
    port = free_port()
    argv = python_module("devstack.smtp_sink", "--host", HOST, "--port", str(port), "--dir", str(fault_stack.mail_dir))
    sink = Child("smtp-relayed", argv, fault_stack.logs).start()
    fault_stack.stop_part("smtp")
    stall: StalledSmtp | None = None
    try:
        sink.wait_tcp(HOST, port)
        stall = StalledSmtp(fault_stack.ports["smtp"], port).start()
        yield stall
    finally:
        if stall is not None:
            stall.stop()
        sink.stop()
        fault_stack.restart_part("smtp")


def test_a_decline_email_whose_send_is_under_way_when_the_payment_succeeds_is_not_sent(
    fault_stack: Stack, fault_db: Any, mailbox: Mailbox, stripe: LocalStripe, stalled_smtp: StalledSmtp
) -> None:
    """Decline processed, its send waiting for a stalled SMTP server's greeting, then the success: never sent."""
    payment = decline(fault_stack, stripe, fault_db)
    email = wait_for(lambda: decline_email(fault_db, payment, status="sending"), 30, "the decline's email claimed")
    wait_for(lambda: stalled_smtp.held, 10, "its SMTP connection waiting for the greeting")
    complete(stripe, fault_db, payment)
    stalled_smtp.release()
    final = {"status": {"$nin": ["pending", "sending"]}}
    wait_for(lambda: decline_email(fault_db, payment, **final), 60, "the decline's email settled")
    assert [m for m in mailbox.mails() if m.message_id == email["messageId"]] == []
