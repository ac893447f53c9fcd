"""A failed refund is final, and a request's hold is given back once (the pure rules behind every refund writer)."""

from __future__ import annotations

import pytest

from domain.payments import Refund
from domain.refunds import ABANDONED, FAILED, abandoned, holds_reservation, reported

STRIPE_STATUSES = ["pending", "requires_action", "succeeded", "failed", "canceled"]


@pytest.mark.parametrize("stripe_status", STRIPE_STATUSES)
def test_a_failed_refund_stays_failed_whatever_stripe_reports_after(stripe_status: str) -> None:
    """Events arrive in any order: a created or updated older than the failure changes nothing."""
    assert reported(FAILED, stripe_status) == FAILED


@pytest.mark.parametrize("current", ["pending", "requires_action", "succeeded"])
def test_otherwise_stripe_says_what_a_refund_is(current: str) -> None:
    """A refund not failed takes Stripe's status; canceled is a failure (no money goes back)."""
    assert [reported(current, s) for s in STRIPE_STATUSES] == [
        "pending",
        "requires_action",
        "succeeded",
        FAILED,
        FAILED,
    ]


def test_a_request_holds_its_amount_until_counted_or_given_back() -> None:
    """The hold is decided from the entry's own state: a request neither counted nor released holds its amount."""
    request = Refund(amount=100, status="pending", request_id="r1")
    assert holds_reservation(request)
    assert holds_reservation(Refund(amount=100, status=FAILED, request_id="r1", stripe_id="re_1"))  # linked as failed
    assert not holds_reservation(Refund(amount=100, status="succeeded", request_id="r1", counted=True, released=True))
    assert not holds_reservation(Refund(amount=100, status=FAILED, request_id="r1", released=True))
    assert not holds_reservation(Refund(amount=100, status="failed", stripe_id="re_1"))  # made in the dashboard


def test_a_request_given_up_by_the_sweep_is_told_apart() -> None:
    """Ops are told about requests the sweep gave up on, not about Stripe's own refusals."""
    assert abandoned(Refund(amount=1, status=FAILED, request_id="r1", released=True, failure_reason=ABANDONED))
    assert not abandoned(Refund(amount=1, status=FAILED, request_id="r1", released=True, failure_reason="declined"))
    assert not abandoned(Refund(amount=1, status="pending", request_id="r1", failure_reason=ABANDONED))
