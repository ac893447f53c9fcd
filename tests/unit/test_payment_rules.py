"""The pure rules of a payment: the state machine, the open slot, activation, pricing.

The states: docs/architecture.md#payment-states.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from domain import payments
from domain.activation import AMOUNT_MISMATCH, METADATA_MISMATCH, intent_mismatch, may_activate
from domain.checkout import Service, quote
from domain.errors import RequestRefused
from domain.notices import obsolete
from domain.payments import Party, Payment
from payments_ops import events

METADATA = {"source": events.SOURCE, "paymentRecordId": "rec1", "customerId": "cus1", "serviceId": "svc1"}
PAID_AT = datetime(2026, 11, 1, tzinfo=UTC)


def payment(status: str = payments.COMPLETED, **changes: Any) -> Payment:
    base = Payment(
        record_id="rec1",
        intent_id="pi_1",
        status=status,
        amount=49900,
        currency="INR",
        last_event_at=None,
        customer=Party("cus1", "ada@example.test", "Ada"),
        service_id="svc1",
    )
    return dataclasses.replace(base, **changes)


def succeeded_intent(**changes: Any) -> dict[str, Any]:
    intent = events.payment_intent("payment_intent.succeeded", "pi_1", 49900, "INR", METADATA)
    intent.update(changes)
    return intent


def test_transition_table_matches_the_documented_one() -> None:
    """Terminal states have no way out; a paid payment never goes back to unpaid; a lost dispute can come first."""
    for terminal in (payments.CANCELED, payments.DISPUTE_LOST):
        assert payments.TRANSITIONS[terminal] == frozenset()
    # Refunded is final for its refunds; the charge can still be disputed (and the dispute lost).
    assert payments.TRANSITIONS[payments.REFUNDED] == {payments.DISPUTED, payments.DISPUTE_LOST}
    assert payments.can_move(payments.FAILED, payments.COMPLETED)
    assert not payments.can_move(payments.COMPLETED, payments.FAILED)
    assert payments.can_move(payments.COMPLETED, payments.DISPUTE_LOST)
    assert payments.can_move(payments.PARTIALLY_REFUNDED, payments.DISPUTE_LOST)
    assert payments.sources_of(payments.COMPLETED) == ["disputed", "failed", "pending", "processing", "requires_action"]


@pytest.mark.parametrize(
    ("intent", "status"),
    [
        ({"status": "succeeded"}, payments.COMPLETED),
        ({"status": "processing"}, payments.PROCESSING),
        ({"status": "requires_action"}, payments.REQUIRES_ACTION),
        ({"status": "canceled"}, payments.CANCELED),
        ({"status": "requires_payment_method", "last_payment_error": {"code": "card_declined"}}, payments.FAILED),
        ({"status": "requires_payment_method"}, payments.PENDING),
    ],
)
def test_stripe_intent_states_map_onto_ours(intent: dict[str, Any], status: str) -> None:
    """Each of Stripe's intent states has one status of ours; a decline is failed, a fresh intent pending."""
    assert payments.status_of_intent(intent) == status


def test_the_open_slot_is_held_until_paid_and_activated() -> None:
    """Unpaid, processing and completed payments hold the slot; refunded, canceled or disputed ones do not."""
    holding = {s for s in payments.TRANSITIONS if payments.holds_slot(s)}
    assert holding == {"pending", "requires_action", "failed", "processing", "completed"}
    assert {"pending", "requires_action", "failed"} == payments.REUSABLE


def test_only_a_paid_payment_not_yet_activated_may_activate() -> None:
    """Activation happens once, from completed (or partly refunded), never while a person has to review the payment."""
    assert may_activate(payment())
    assert may_activate(payment(payments.PARTIALLY_REFUNDED, amount_refunded=100))
    for status in payments.TRANSITIONS.keys() - {payments.COMPLETED, payments.PARTIALLY_REFUNDED}:
        assert not may_activate(payment(status)), status
    assert not may_activate(payment(activated_at=PAID_AT))
    assert not may_activate(payment(review="amount_mismatch"))


def test_a_completed_payment_with_a_refund_or_dispute_waiting_never_activates() -> None:
    """Completed by a late intent while a refund or an open or lost dispute was already recorded: not activated."""
    opened = payments.Dispute("dp_1", "needs_response", PAID_AT, payments.COMPLETED)
    assert not may_activate(payment(dispute=opened))
    assert not may_activate(payment(dispute=dataclasses.replace(opened, status="lost")))
    assert may_activate(payment(amount_refunded=100))  # a partial refund counted first: the course is still paid for
    assert not may_activate(payment(amount_refunded=payment().amount))
    assert may_activate(payment(dispute=dataclasses.replace(opened, status="won")))


@pytest.mark.parametrize("status", sorted(payments.PAID))
def test_an_intent_never_moves_a_paid_payment(status: str) -> None:
    """Stripe's intent stays succeeded through refunds and disputes: no intent state moves a paid payment."""
    for target in (payments.PENDING, payments.REQUIRES_ACTION, payments.PROCESSING, payments.COMPLETED):
        assert not payments.intent_can_move(status, target), target
    for target in (payments.FAILED, payments.CANCELED):
        assert not payments.intent_can_move(status, target), target
    assert status not in payments.intent_sources_of(payments.COMPLETED)


def test_intents_still_move_unpaid_payments() -> None:
    """Before the money, the intent's state decides as the table says."""
    assert payments.intent_sources_of(payments.COMPLETED) == ["failed", "pending", "processing", "requires_action"]
    assert payments.intent_can_move(payments.PROCESSING, payments.FAILED)
    assert not payments.intent_can_move(payments.PROCESSING, payments.REQUIRES_ACTION)


def test_a_succeeded_intent_that_pays_for_the_payment_has_no_mismatch() -> None:
    """Amount, currency and metadata all match; older payloads without amount_received use amount."""
    assert intent_mismatch(payment(), succeeded_intent()) is None
    older = succeeded_intent()
    del older["amount_received"]
    assert intent_mismatch(payment(), older) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount_received": 100}, AMOUNT_MISMATCH),
        ({"amount_received": "²"}, AMOUNT_MISMATCH),
        ({"currency": "usd"}, AMOUNT_MISMATCH),
        ({"metadata": {**METADATA, "customerId": "someone-else"}}, METADATA_MISMATCH),
        ({"metadata": "not an object"}, METADATA_MISMATCH),
    ],
)
def test_what_a_mismatch_is_flagged_as(changes: dict[str, Any], reason: str) -> None:
    """Money that differs is an amount mismatch; an intent naming another payment is a metadata mismatch."""
    mismatch = intent_mismatch(payment(), succeeded_intent(**changes))
    assert mismatch is not None and mismatch.reason == reason


SERVICE = Service(
    id="svc1", name="Python 101", type="course", price=499, currency="inr", specialist_id="s", active=True
)


def test_a_quote_comes_from_the_catalog() -> None:
    """The price is the service's, in minor units, with the currency upper-cased."""
    priced = quote(SERVICE, "course", None)
    assert (priced.amount, priced.currency, priced.service) == (49900, "INR", SERVICE)
    assert quote(SERVICE, "course", 49900).amount == 49900


@pytest.mark.parametrize(
    ("service", "service_type", "client_amount", "code"),
    [
        (None, "course", None, "not_found"),
        (dataclasses.replace(SERVICE, active=False), "course", None, "not_found"),
        (SERVICE, "session", None, "validation_error"),
        (SERVICE, "course", 100, "amount_mismatch"),
        (dataclasses.replace(SERVICE, price="abc"), "course", None, "validation_error"),
        (dataclasses.replace(SERVICE, currency=""), "course", None, "validation_error"),
    ],
)
def test_quotes_refuse_what_cannot_be_sold(
    service: Service | None, service_type: str, client_amount: int | None, code: str
) -> None:
    """A missing or inactive service, another type, a client amount that differs, a bad price: refused."""
    with pytest.raises(RequestRefused) as refused:
        quote(service, service_type, client_amount)
    assert refused.value.code == code


def test_a_payment_failed_email_is_obsolete_once_the_payment_is_paid() -> None:
    """A decline's email stays true while the payment is unpaid and stops being true once it is paid."""
    for status in payments.PAID:
        assert obsolete("payment_failed", status), status
    for status in (payments.FAILED, payments.PENDING, payments.REQUIRES_ACTION):
        assert not obsolete("payment_failed", status), status
    assert not obsolete("enrollment_confirmation", payments.REFUNDED)
