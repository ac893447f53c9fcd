"""The payment state machine applied to events in any order (DESIGN §2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from devstack import events
from domain import payments
from domain.errors import RetryLater
from domain.inbox import process_event
from domain.payments import Party, Payment
from tests.fakes import FakeInbox, FakePayments, FakeStripe, fake_deps

OURS = {"source": events.SOURCE, "paymentRecordId": "rec1", "customerId": "cus1", "serviceId": "svc1"}
T0 = 1_700_000_000


def payment(status: str = payments.PENDING, last: int | None = None) -> Payment:
    at = datetime.fromtimestamp(last, UTC) if last is not None else None
    return Payment(
        record_id="rec1",
        intent_id="pi_1",
        status=status,
        amount=49900,
        currency="INR",
        last_event_at=at,
        customer=Party("cus1", "ada@example.test", "Ada"),
        specialist=Party("spc1", "grace@example.test", "Grace"),
        service_id="svc1",
        service_type="course",
        service_name="Python 101",
    )


def intent_event(event_type: str, created: int = T0, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    intent = events.payment_intent(event_type, "pi_1", 49900, "INR", OURS if metadata is None else metadata)
    return events.event(event_type, intent, created=created)


def status_of(deps: Any) -> str:
    row = cast(FakePayments, deps.payments).by_intent("pi_1")
    assert row is not None
    return row.status


def test_succeeded_completes_a_pending_payment() -> None:
    """payment_intent.succeeded moves a pending payment to completed and the event to processed."""
    deps = fake_deps(payment())
    evt = intent_event("payment_intent.succeeded")
    assert process_event(evt, deps) == "processed"
    assert status_of(deps) == payments.COMPLETED
    assert cast(FakeInbox, deps.inbox).status[evt["id"]] == "processed"


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("payment_intent.processing", payments.PROCESSING),
        ("payment_intent.requires_action", payments.REQUIRES_ACTION),
        ("payment_intent.payment_failed", payments.FAILED),
        ("payment_intent.canceled", payments.CANCELED),
    ],
)
def test_each_outcome_event_moves_a_pending_payment(event_type: str, status: str) -> None:
    """Every subscribed intent outcome has a handler that moves a pending payment to its status."""
    deps = fake_deps(payment())
    process_event(intent_event(event_type), deps)
    assert status_of(deps) == status


def test_a_redelivered_event_is_skipped() -> None:
    """A processed event delivered again changes nothing."""
    deps = fake_deps(payment())
    evt = intent_event("payment_intent.succeeded")
    process_event(evt, deps)
    assert process_event(evt, deps) == "processed"
    assert cast(FakePayments, deps.payments).history == [(payments.COMPLETED, evt["id"])]
    assert cast(FakeInbox, deps.inbox).attempts[evt["id"]] == 2


def test_processing_after_succeeded_keeps_completed() -> None:
    """An older processing event arriving after succeeded cannot undo the payment."""
    stripe_says = {"pi_1": {"id": "pi_1", "status": "succeeded"}}
    deps = fake_deps(payment(), intents=stripe_says)
    process_event(intent_event("payment_intent.succeeded", T0 + 5), deps)
    process_event(intent_event("payment_intent.processing", T0 + 1), deps)
    assert status_of(deps) == payments.COMPLETED


def test_a_failed_payment_can_still_succeed() -> None:
    """A decline followed by a successful retry ends completed."""
    deps = fake_deps(payment())
    process_event(intent_event("payment_intent.payment_failed", T0), deps)
    process_event(intent_event("payment_intent.succeeded", T0 + 30), deps)
    assert status_of(deps) == payments.COMPLETED


def test_a_tie_in_seconds_is_settled_by_stripe() -> None:
    """Two events in the same second: Stripe's current state of the intent decides."""
    stripe_says = {"pi_1": {"id": "pi_1", "status": "requires_payment_method", "last_payment_error": {"x": 1}}}
    deps = fake_deps(payment(payments.PROCESSING, last=T0), intents=stripe_says)
    process_event(intent_event("payment_intent.payment_failed", T0), deps)
    assert status_of(deps) == payments.FAILED
    assert cast(FakeStripe, deps.stripe).calls == ["pi_1"]


def test_a_refused_move_asks_stripe_and_keeps_a_terminal_state() -> None:
    """A canceled payment stays canceled even if a late failure event insists."""
    stripe_says = {"pi_1": {"id": "pi_1", "status": "canceled"}}
    deps = fake_deps(payment(payments.CANCELED, last=T0), intents=stripe_says)
    assert process_event(intent_event("payment_intent.payment_failed", T0 + 10), deps) == "processed"
    assert status_of(deps) == payments.CANCELED


def test_an_intent_we_did_not_create_is_ignored() -> None:
    """An event about an intent without our metadata source is recorded ignored, not retried."""
    deps = fake_deps()
    evt = intent_event("payment_intent.succeeded", metadata={})
    assert process_event(evt, deps) == "ignored"
    assert cast(FakeInbox, deps.inbox).status[evt["id"]] == "ignored"


def test_our_intent_without_a_visible_payment_is_retried() -> None:
    """An event about one of ours whose payment is not stored yet raises RetryLater."""
    deps = fake_deps()
    with pytest.raises(RetryLater):
        process_event(intent_event("payment_intent.succeeded"), deps)


def test_transition_table_matches_the_design() -> None:
    """Terminal states have no way out and every target is reachable from somewhere."""
    for terminal in (payments.CANCELED, payments.REFUNDED, payments.DISPUTE_LOST):
        assert payments.TRANSITIONS[terminal] == frozenset()
    assert payments.can_move(payments.FAILED, payments.COMPLETED)
    assert not payments.can_move(payments.COMPLETED, payments.FAILED)
    assert payments.sources_of(payments.COMPLETED) == ["disputed", "failed", "pending", "processing", "requires_action"]
