"""The pure rules of refunds and disputes (issue 8): amounts left, who may ask, which dispute update wins."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from domain import disputes
from domain.errors import RequestRefused
from domain.payments import PAID as PAID_STATUSES
from domain.payments import Dispute, Party, Payment, can_move, paid_status
from domain.refunds import refund_amount, remainder, status_after_refunds, stripe_reason

NOW = datetime(2026, 11, 29, tzinfo=UTC)
WINDOW = timedelta(days=30)
PAID = Payment(
    record_id="rec1",
    intent_id="pi_1",
    status="completed",
    amount=49900,
    currency="INR",
    last_event_at=None,
    customer=Party("cus1"),
    paid_at=NOW - timedelta(days=2),
)


def test_the_remainder_leaves_out_refunds_made_and_requests_pending() -> None:
    """amount - refunded - held by pending requests; no amount asks for all of it."""
    payment = dataclasses.replace(PAID, amount_refunded=10000, refund_reserved=9900)
    assert remainder(payment) == 30000
    assert refund_amount(payment, None, customer=True, now=NOW, window=WINDOW) == 30000
    with pytest.raises(RequestRefused, match="30000 is left"):
        refund_amount(payment, 30001, customer=False, now=NOW, window=WINDOW)


@pytest.mark.parametrize("status", ["pending", "failed", "refunded", "dispute_lost", "disputed", "canceled"])
def test_only_a_paid_payment_not_under_dispute_is_refundable(status: str) -> None:
    """Unpaid, fully refunded, lost or disputed payments are not refundable."""
    with pytest.raises(RequestRefused) as refused:
        refund_amount(dataclasses.replace(PAID, status=status), None, customer=False, now=NOW, window=WINDOW)
    assert refused.value.code == "not_refundable"


def test_the_window_binds_customers_only() -> None:
    """A customer past REFUND_WINDOW_DAYS is refused; the specialist or an admin is not."""
    old = dataclasses.replace(PAID, paid_at=NOW - WINDOW - timedelta(seconds=1))
    with pytest.raises(RequestRefused, match="within 30 days"):
        refund_amount(old, 100, customer=True, now=NOW, window=WINDOW)
    assert refund_amount(old, 100, customer=False, now=NOW, window=WINDOW) == 100


def test_stripe_reasons_and_statuses() -> None:
    """Stripe's three reasons pass through, free text stays ours; the status follows the refunded total."""
    assert [stripe_reason(r) for r in ("duplicate", "fraudulent", "requested_by_customer", "bored", None)] == [
        "duplicate",
        "fraudulent",
        "requested_by_customer",
        None,
        None,
    ]
    assert [status_after_refunds(100, r) for r in (0, 1, 100, 150)] == [
        None,
        "partially_refunded",
        "refunded",
        "refunded",
    ]


def stored(status: str, seconds: int) -> Dispute:
    return Dispute("dp_1", status, NOW + timedelta(seconds=seconds), "completed")


def test_a_closed_dispute_is_never_undone_and_newer_updates_win() -> None:
    """Closed beats open whatever the times; between two of a kind the newer wins; an equal one re-applies."""
    assert disputes.supersedes("needs_response", NOW, None)
    assert not disputes.supersedes("needs_response", NOW + timedelta(hours=1), stored("won", 0))
    assert disputes.supersedes("lost", NOW - timedelta(hours=1), stored("under_review", 0))
    assert not disputes.supersedes("needs_response", NOW, stored("under_review", 10))
    assert disputes.supersedes("under_review", NOW + timedelta(seconds=10), stored("under_review", 10))


def test_what_a_dispute_does_to_the_enrollment() -> None:
    """The enrollment follows the payment's status: suspended while disputed, cancelled once refunded or lost."""
    assert [
        disputes.enrollment_effect(s)
        for s in ("disputed", "refunded", "dispute_lost", "completed", "partially_refunded", "pending")
    ] == ["suspend", "cancel", "cancel", "reinstate", "reinstate", None]
    assert disputes.status_before("partially_refunded", None) == "partially_refunded"
    assert disputes.status_before("refunded", None) == "refunded"
    assert disputes.status_before("disputed", stored("needs_response", 0)) == "completed"


@pytest.mark.parametrize(
    ("refunded", "dispute", "status"),
    [
        (0, None, "completed"),
        (1, None, "partially_refunded"),
        (100, None, "refunded"),
        (0, "warning_needs_response", "disputed"),
        (40, "needs_response", "disputed"),
        (100, "under_review", "disputed"),
        (0, "won", "completed"),
        (40, "won", "partially_refunded"),
        (100, "won", "refunded"),
        (100, "warning_closed", "refunded"),
        (0, "lost", "dispute_lost"),
        (100, "lost", "dispute_lost"),
    ],
)
def test_a_paid_status_comes_from_refunds_and_dispute_together(refunded: int, dispute: str | None, status: str) -> None:
    """Disputed while open whatever was refunded; lost is lost; otherwise (none, won) the refunds decide."""
    assert paid_status(100, refunded, dispute) == status


def test_any_order_of_refunds_and_dispute_updates_can_reach_the_status_they_call_for() -> None:
    """Facts only grow (refunds add up, a dispute opens then closes): the table allows every step between statuses."""
    stages: list[str | None] = [None, "needs_response", "won", "warning_closed", "lost"]
    later: dict[str | None, list[str | None]] = {
        None: stages,
        "needs_response": stages[1:],
        "won": ["won"],
        "warning_closed": ["warning_closed"],
        "lost": ["lost"],
    }
    for before_dispute, after_disputes in later.items():
        for after_dispute in after_disputes:
            for before_refunded in (0, 40, 100):
                for after_refunded in (r for r in (0, 40, 100) if r >= before_refunded):
                    before = paid_status(100, before_refunded, before_dispute)
                    after = paid_status(100, after_refunded, after_dispute)
                    assert before in PAID_STATUSES and after in PAID_STATUSES
                    assert before == after or can_move(before, after), (before, after)


def test_an_open_dispute_refuses_refunds_before_the_payment_moved() -> None:
    """A dispute recorded on a payment not yet moved to disputed (a worker died between): still 409."""
    opened = dataclasses.replace(PAID, dispute=stored("needs_response", 0))
    with pytest.raises(RequestRefused, match="under dispute") as refused:
        refund_amount(opened, None, customer=False, now=NOW, window=WINDOW)
    assert refused.value.code == "not_refundable"
    won = dataclasses.replace(PAID, dispute=stored("won", 0))
    assert refund_amount(won, None, customer=False, now=NOW, window=WINDOW) == 49900
