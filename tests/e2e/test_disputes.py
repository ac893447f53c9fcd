"""Disputes end to end: signed dispute events through the ingress and the worker (issue 8).

The local Stripe has no disputes API, so the events are built from Stripe's dispute fixture and
signed here, for payments made through the local Stripe.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from payments_ops import events
from tests.e2e.test_refunds import ask_refund, mails, paid_shopper, payment
from tests.support import signed, wait_for

T0 = 1_780_000_000


def dispute_events(intent_id: str, outcome: str) -> list[dict[str, Any]]:
    """created, updated and closed for one dispute on the intent, with Stripe's real shapes."""
    dispute_id = events.new_id("dp")
    steps = [("created", "needs_response"), ("updated", "under_review"), ("closed", outcome)]
    made = []
    for offset, (step, status) in enumerate(steps):
        dispute = events.fixture("dispute")
        dispute.update(id=dispute_id, status=status, amount=49900, currency="inr", payment_intent=intent_id)
        made.append(events.event(f"charge.dispute.{step}", dispute, created=T0 + 10 * offset))
    return made


def deliver(http: httpx.Client, stack: Stack, db: Any, *evts: dict[str, Any]) -> None:
    """Post each event signed, as Stripe would, and wait until the worker has processed them all."""
    for event in evts:
        body, headers = signed(event, stack.webhook_secret)
        assert http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    deliveries = Counter(event["id"] for event in evts)

    def all_seen() -> bool:
        found = {d["_id"]: d for d in db.stripe_events.find({"_id": {"$in": list(deliveries)}})}
        return all(
            e in found and found[e]["status"] == "processed" and found[e]["attempts"] >= n
            for e, n in deliveries.items()
        )

    wait_for(all_seen, 20, "every delivery processed or skipped")


def enrollment(db: Any, intent_id: str) -> Any:
    return db.enrollments.find_one({"_id": payment(db, intent_id)["enrollmentId"]})


@pytest.mark.parametrize(
    ("outcome", "status", "enrolled"), [("won", "completed", "active"), ("lost", "dispute_lost", "cancelled")]
)
def test_a_dispute_suspends_then_ends(
    stack: Stack, http: httpx.Client, stack_db: Any, outcome: str, status: str, enrolled: str
) -> None:
    """created suspends the enrollment and refunds are refused; closed won reinstates it, lost cancels it."""
    shopper, intent_id = paid_shopper(stack, http, stack_db)
    created, updated, closed = dispute_events(intent_id, outcome)
    deliver(http, stack, stack_db, created)
    assert (payment(stack_db, intent_id)["status"], enrollment(stack_db, intent_id)["status"]) == (
        "disputed",
        "suspended",
    )
    refused = ask_refund(http, shopper, intent_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "not_refundable")
    wait_for(lambda: any("disputed" in str(m["Subject"]) for m in mails(stack, shopper)), 20, "the dispute email")
    deliver(http, stack, stack_db, updated, closed)
    assert (payment(stack_db, intent_id)["status"], enrollment(stack_db, intent_id)["status"]) == (status, enrolled)


def test_shuffled_and_duplicated_dispute_events_end_the_same(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """The three events of a lost dispute, twice each, shuffled: dispute_lost and the enrollment cancelled."""
    _, intent_id = paid_shopper(stack, http, stack_db)
    evts = dispute_events(intent_id, "lost") * 2
    random.Random(7).shuffle(evts)
    deliver(http, stack, stack_db, *evts)
    assert (payment(stack_db, intent_id)["status"], enrollment(stack_db, intent_id)["status"]) == (
        "dispute_lost",
        "cancelled",
    )
    assert payment(stack_db, intent_id)["dispute"]["status"] == "lost"
