"""domain/alerts.py: when a rule breaks, and which change (and email) one evaluation makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.alerts import BY_NAME, FIRE, REMIND, RESOLVE, RULES, RuleState, breached, describe, transition
from domain.success_metrics import TARGETS

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def test_the_nine_rules_have_their_fixed_names_and_one_fact_each() -> None:
    assert [rule.name for rule in RULES] == [
        "PaymentSuccessRateLow",
        "WebhookSignatureFailures",
        "WebhookBrokerUnavailable",
        "EventsDeadLettered",
        "QueueBacklogOld",
        "EventProcessingSlow",
        "ActivationSlow",
        "RefundRateHigh",
        "NoWorkerHeartbeat",
    ]
    assert len({rule.fact for rule in RULES}) == len(RULES)


def test_a_rule_breaks_past_its_threshold_only_and_never_without_a_value() -> None:
    """As the targets say: a rate at 0.98 is on target, a mean at 2 s is not; an unknown value never fires."""
    rate, slow, dead = BY_NAME["PaymentSuccessRateLow"], BY_NAME["EventProcessingSlow"], BY_NAME["EventsDeadLettered"]
    assert [breached(rate, v) for v in (0.97, 0.98, 1.0, None)] == [True, False, False, False]
    assert [breached(slow, v) for v in (2.01, 2.0, 1.99, None)] == [True, True, False, False]
    assert [breached(dead, v) for v in (1, 0)] == [True, False]
    assert [breached(BY_NAME["NoWorkerHeartbeat"], v) for v in (0, 1)] == [True, False]


@pytest.mark.parametrize(
    ("rule", "metric"),
    [
        ("PaymentSuccessRateLow", "paymentSuccessRate"),
        ("EventProcessingSlow", "processingSeconds"),
        ("ActivationSlow", "activationSeconds"),
        ("RefundRateHigh", "refundRate"),
    ],
)
def test_a_success_rule_fires_exactly_when_its_metric_is_off_target(rule: str, metric: str) -> None:
    """The same line as the metrics page: at, just under and just over the target's bound."""
    bound = TARGETS[metric].bound
    for value in (bound, bound - 1e-9, bound + 1e-9, 0.0, bound * 2):
        assert breached(BY_NAME[rule], value) == (TARGETS[metric].met(value) is False), value


def test_one_email_on_firing_at_most_one_an_hour_while_firing_one_on_resolve() -> None:
    firing = RuleState(firing=True, since=T0, last_email_at=T0)
    assert transition(True, RuleState(), T0) == FIRE
    assert transition(False, RuleState(), T0) is None
    assert transition(True, firing, T0 + timedelta(minutes=59)) is None
    assert transition(True, firing, T0 + timedelta(hours=1)) == REMIND
    assert transition(False, firing, T0 + timedelta(minutes=1)) == RESOLVE
    resolved = RuleState(firing=False, since=T0, last_email_at=T0 + timedelta(minutes=1))
    assert transition(False, resolved, T0 + timedelta(minutes=2)) is None


def test_values_read_as_people_read_them() -> None:
    assert describe(BY_NAME["PaymentSuccessRateLow"], 0.912) == "91.2%"
    assert describe(BY_NAME["QueueBacklogOld"], 360.0) == "360.0 s"
    assert describe(BY_NAME["EventsDeadLettered"], 3.0) == "3"
    assert describe(BY_NAME["ActivationSlow"], None) == "no data"
