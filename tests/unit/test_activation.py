"""Activation on payment_intent.succeeded: verified amounts, one enrollment, two emails (DESIGN §2)."""

from __future__ import annotations

import dataclasses
from typing import cast

from domain import payments
from domain.inbox import process_event
from domain.ports import Deps
from tests.fakes import FakeEnrollments, FakeOutbox, FakePayments, fake_deps
from tests.unit.test_transitions import OURS, T0, intent_event, payment


def outbox(deps: Deps) -> FakeOutbox:
    return cast(FakeOutbox, deps.outbox)


def test_success_activates_once_and_emails_both_sides() -> None:
    """The enrollment becomes active, webhook-verified, and customer and specialist are emailed."""
    deps = fake_deps(payment())
    process_event(intent_event("payment_intent.succeeded", T0), deps)
    [row] = cast(FakeEnrollments, deps.enrollments).rows.values()
    assert (row["status"], row["verified"], row["payment"]) == ("active", True, "rec1")
    assert outbox(deps).sent("enrollment_confirmation") == ["ada@example.test"]
    assert outbox(deps).sent("specialist_new_enrollment") == ["grace@example.test"]
    assert cast(FakePayments, deps.payments).rows["pi_1"].enrollment_id == row["id"]


def test_duplicates_and_order_give_the_same_end_and_the_same_two_emails() -> None:
    """succeeded twice, then a late processing: completed, one enrollment, still two emails."""
    stripe_says = {"pi_1": {"id": "pi_1", "status": "succeeded"}}
    deps = fake_deps(payment(), intents=stripe_says)
    succeeded = intent_event("payment_intent.succeeded", T0 + 2)
    process_event(succeeded, deps)
    process_event(succeeded, deps)
    process_event(intent_event("payment_intent.processing", T0 + 1), deps)
    assert cast(FakePayments, deps.payments).rows["pi_1"].status == payments.COMPLETED
    assert len(cast(FakeEnrollments, deps.enrollments).rows) == 1
    assert len(outbox(deps).notes) == 2


def test_an_amount_that_does_not_match_is_never_activated() -> None:
    """An intent paying less than the stored payment is flagged for review and ops are told."""
    deps = fake_deps(payment())
    event = intent_event("payment_intent.succeeded")
    event["data"]["object"]["amount_received"] = 100
    process_event(event, deps)
    assert cast(FakePayments, deps.payments).reviews == {"pi_1": "amount_mismatch"}
    assert cast(FakePayments, deps.payments).rows["pi_1"].status == payments.PENDING
    assert cast(FakeEnrollments, deps.enrollments).rows == {}
    assert outbox(deps).sent("ops_review_required") == ["ops@example.test"]


def test_tampered_metadata_is_never_activated() -> None:
    """An intent whose metadata names another customer is flagged, not activated."""
    deps = fake_deps(payment())
    process_event(intent_event("payment_intent.succeeded", metadata={**OURS, "customerId": "someone"}), deps)
    assert cast(FakePayments, deps.payments).reviews == {"pi_1": "amount_mismatch"}
    assert cast(FakeEnrollments, deps.enrollments).rows == {}


def test_payloads_without_amount_received_use_amount() -> None:
    """Older API versions (localstripe's) carry only ``amount``; it is checked instead."""
    deps = fake_deps(payment())
    event = intent_event("payment_intent.succeeded")
    del event["data"]["object"]["amount_received"]
    process_event(event, deps)
    assert cast(FakePayments, deps.payments).rows["pi_1"].status == payments.COMPLETED


def test_a_second_payment_for_an_active_enrollment_is_flagged_duplicate() -> None:
    """Another successful payment for the same service is never a second activation."""
    first = payment()
    second = dataclasses.replace(payment(), record_id="rec2", intent_id="pi_2")
    deps = fake_deps(first, second)
    process_event(intent_event("payment_intent.succeeded"), deps)
    event = intent_event("payment_intent.succeeded", metadata={**OURS, "paymentRecordId": "rec2"})
    event["data"]["object"]["id"] = "pi_2"
    process_event(event, deps)
    assert cast(FakePayments, deps.payments).reviews == {"pi_2": "duplicate_payment"}
    assert outbox(deps).sent("enrollment_confirmation") == ["ada@example.test"]


def test_a_declined_payment_emails_the_customer_once() -> None:
    """payment_failed marks the payment failed and emails the customer, once per event."""
    deps = fake_deps(payment())
    event = intent_event("payment_intent.payment_failed")
    process_event(event, deps)
    process_event(event, deps)
    assert cast(FakePayments, deps.payments).rows["pi_1"].status == payments.FAILED
    [(template, to, context)] = outbox(deps).notes.values()
    assert (template, to, context["reason"]) == ("payment_failed", "ada@example.test", "Your card was declined.")
