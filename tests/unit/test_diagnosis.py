"""The diagnosis rules (domain/diagnosis.py), one finding at a time, from facts built here."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.diagnosis import CODES, RULES, Facts, RefundFact, StripeFacts, diagnose

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
PAID_AT = NOW - timedelta(hours=1)
OPEN = "needs_response"
STRIPE_PAID = StripeFacts(status="succeeded", amount=49900, currency="inr")
#: A payment paid an hour ago, activated, its webhook in, Stripe agreeing: nothing to find.
HEALTHY = Facts(
    intent_id="pi_healthy",
    status="completed",
    amount=49900,
    currency="INR",
    now=NOW,
    paid_at=PAID_AT,
    activated=True,
    succeeded_event=True,
    enrollment_status="active",
    enrollment_ours=True,
    stripe=STRIPE_PAID,
)


def unpaid(status: str, **changes: object) -> Facts:
    """The healthy payment, not paid (``status``), without enrollment, then ``changes``."""
    base = replace(HEALTHY, status=status, paid_at=None, activated=False, succeeded_event=False,
                   enrollment_status=None, enrollment_ours=False)  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(facts: Facts) -> list[str]:
    return [finding.code for finding in diagnose(facts)]


def test_a_healthy_payment_has_no_finding() -> None:
    assert diagnose(HEALTHY) == []


def test_a_healthy_pending_payment_has_no_finding() -> None:
    """Not paid yet, as Stripe says too: nothing is wrong."""
    pending = unpaid("pending", stripe=StripeFacts("requires_payment_method", 49900, "inr"))
    assert diagnose(pending) == []


def test_the_table_names_every_code_once_in_order() -> None:
    assert list(CODES) == [code for code, _ in RULES] and len(set(CODES)) == 12
    assert CODES[0] == "stripe_unreachable"


CASES: list[tuple[str, Facts]] = [
    # Confirm-payment completed it, Stripe says succeeded, the webhook never came.
    ("webhook_not_received", replace(HEALTHY, succeeded_event=False)),
    ("event_failed", replace(HEALTHY, dead_failures=("65a000000000000000000001",))),
    ("event_failed", replace(HEALTHY, failed_events=("evt_failed",))),
    ("paid_not_activated", replace(HEALTHY, activated=False, enrollment_status=None, enrollment_ours=False)),
    ("enrollment_changed_by_app", replace(HEALTHY, enrollment_status="cancelled")),
    ("enrollment_changed_by_app", replace(HEALTHY, enrollment_status=None, enrollment_ours=False)),
    ("enrollment_changed_by_app", replace(HEALTHY, enrollment_ours=False)),
    ("awaiting_customer_action", unpaid("requires_action", stripe=StripeFacts("requires_action", 49900, "inr"))),
    ("review_required", replace(HEALTHY, activated=False, enrollment_status=None, review_reason="amount_mismatch")),
    ("refund_pending", replace(HEALTHY, refunds=(RefundFact("re_1", 100, "pending"),))),
    ("refund_failed", replace(HEALTHY, refunds=(RefundFact("re_1", 100, "failed", "expired_or_canceled_card"),))),
    (
        "dispute_open",
        replace(HEALTHY, status="disputed", dispute_status="needs_response", enrollment_status="suspended"),
    ),
    (
        "dispute_open",
        replace(HEALTHY, stripe=replace(STRIPE_PAID, dispute_status="needs_response", dispute_due_by=NOW)),
    ),
    ("email_failed", replace(HEALTHY, failed_emails=("enrollment_confirmation",))),
    ("stripe_disagrees", replace(HEALTHY, stripe=replace(STRIPE_PAID, amount=50000))),
    ("stripe_disagrees", replace(HEALTHY, stripe=replace(STRIPE_PAID, amount_refunded=49900))),
    ("stripe_disagrees", unpaid("failed", succeeded_event=True)),
]


@pytest.mark.parametrize(("code", "facts"), CASES, ids=[f"{code}-{i}" for i, (code, _) in enumerate(CASES)])
def test_each_finding_alone(code: str, facts: Facts) -> None:
    """Each case differs from the healthy payment in one fact, and gives exactly its finding, with a fix."""
    [finding] = diagnose(facts)
    assert finding.code == code and finding.message and finding.fix


def test_every_code_is_covered_by_a_case_here() -> None:
    assert {code for code, _ in CASES} | {"stripe_unreachable"} == set(CODES)


def test_each_fix_names_a_command_or_a_button() -> None:
    for code, facts in [*CASES, ("stripe_unreachable", replace(HEALTHY, stripe=None, stripe_error="timeout"))]:
        for finding in diagnose(facts):
            assert "payments-ops" in finding.fix or "\u201c" in finding.fix or "dashboard" in finding.fix, code


def test_stripe_unreachable_claims_nothing_that_needs_stripe() -> None:
    """Without Stripe's view the webhook and disagreement rules are silent; ours still speak."""
    blind = replace(HEALTHY, succeeded_event=False, stripe=None, stripe_error="Stripe did not answer within 5 s")
    assert codes(blind) == ["stripe_unreachable"]
    assert "did not answer within 5 s" in diagnose(blind)[0].message
    failed_too = replace(blind, failed_emails=("enrollment_confirmation",))
    assert codes(failed_too) == ["stripe_unreachable", "email_failed"]


def test_no_intent_yet_is_not_stripe_unreachable() -> None:
    """A draft without an intent: Stripe was not asked, and that is no finding."""
    draft = unpaid("pending", intent_id=None, stripe=None)
    assert diagnose(draft) == []


def test_a_payment_paid_a_moment_ago_is_not_yet_unactivated() -> None:
    fresh = replace(HEALTHY, activated=False, enrollment_status=None, paid_at=NOW - timedelta(seconds=5))
    assert diagnose(fresh) == []


def test_the_dispute_deadline_is_in_the_message() -> None:
    due = datetime(2026, 12, 20, 23, 59, tzinfo=UTC)
    disputed = replace(HEALTHY, status="disputed", dispute_status="needs_response", dispute_due_by=due, stripe=None)
    [finding] = diagnose(disputed)
    assert finding.code == "dispute_open" and "2026-12-20 23:59 UTC" in finding.message


def test_a_closed_dispute_and_an_enrollment_this_service_ended_are_no_findings() -> None:
    won = replace(HEALTHY, dispute_status="won")
    refunded = replace(HEALTHY, status="refunded", amount_refunded=49900, enrollment_status="cancelled",
                       stripe=replace(STRIPE_PAID, amount_refunded=49900))  # fmt: skip
    assert diagnose(won) == [] and diagnose(refunded) == []


def test_several_findings_come_in_the_table_order() -> None:
    messy = replace(HEALTHY, succeeded_event=False, failed_emails=("x",), review_reason="duplicate_payment")
    assert codes(messy) == ["webhook_not_received", "review_required", "email_failed"]
