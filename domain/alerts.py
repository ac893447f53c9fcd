"""The alert rules: one table of names, facts and thresholds, and when an email goes out.

Two evaluators read this table: Prometheus, through ``deploy/prometheus/alerts.yml`` (a unit test
checks that its thresholds and windows are these), and the workers' evaluator, which emails
``OPS_EMAIL`` (``usecases.alerts``). What each rule means and what to do: docs/runbooks.md; how the
two ways are run: docs/alerts.md.

A rule compares one fact (a number the evaluator gathers) with its threshold; the four on the
seed's success metrics fire exactly when the metrics page shows the metric off its target
(``domain.success_metrics.TARGETS``, a test holds them equal). A fact that is not
known (no payment in the window, a source that could not be read) never fires a rule: the
evaluator says so on its line rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

#: The windows the facts are counted over (Prometheus' ``[5m]``, ``window="1h"``, …).
SHORT = timedelta(minutes=5)
DEAD_LETTER_WINDOW = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)

#: While a rule keeps firing, at most one email per this long (the first says it started).
REMIND_EVERY = timedelta(hours=1)

#: The facts the rules read, by name.
PAYMENT_SUCCESS_RATE = "payment_success_rate_1h"
SIGNATURE_FAILURES = "webhook_invalid_signature_5m"
BROKER_UNAVAILABLE = "webhook_broker_unavailable_5m"
DEAD_LETTERS = "dead_letters_15m"
QUEUE_OLDEST_AGE = "queue_oldest_message_age_seconds"
PROCESSING_MEAN = "processing_seconds_mean_1h"
ACTIVATION_MEAN = "activation_seconds_mean_1h"
REFUND_RATE = "refund_rate_24h"
WORKERS_ALIVE = "workers_alive"


@dataclass(frozen=True)
class Rule:
    name: str
    fact: str
    #: ``>``, ``>=``, ``<`` or ``<=``: how the fact compares with the threshold when the rule fires.
    op: str
    threshold: float
    #: How long the fact is counted over (None: a value read now).
    window: timedelta | None
    severity: str
    summary: str


RULES: tuple[Rule, ...] = (
    Rule(
        "PaymentSuccessRateLow",
        PAYMENT_SUCCESS_RATE,
        "<",
        0.98,
        HOUR,
        "critical",
        "Under 98% of the payments that reached an outcome in the last hour were paid",
    ),
    Rule(
        "WebhookSignatureFailures",
        SIGNATURE_FAILURES,
        ">",
        5,
        SHORT,
        "warning",
        "More than 5 webhook deliveries in 5 minutes failed the signature check",
    ),
    Rule(
        "WebhookBrokerUnavailable",
        BROKER_UNAVAILABLE,
        ">",
        2,
        SHORT,
        "critical",
        "More than 2 webhook deliveries in 5 minutes were answered 503 (Redis unreachable)",
    ),
    Rule(
        "EventsDeadLettered",
        DEAD_LETTERS,
        ">",
        0,
        DEAD_LETTER_WINDOW,
        "warning",
        "Jobs failed for good into the dead letters in the last 15 minutes",
    ),
    Rule(
        "QueueBacklogOld",
        QUEUE_OLDEST_AGE,
        ">",
        300,
        None,
        "warning",
        "A queue's oldest ready message has waited more than 5 minutes",
    ),
    Rule(
        "EventProcessingSlow",
        PROCESSING_MEAN,
        ">=",
        2,
        HOUR,
        "warning",
        "Events took 2 s or more on average from receipt to processed over the last hour",
    ),
    Rule(
        "ActivationSlow",
        ACTIVATION_MEAN,
        ">=",
        5,
        HOUR,
        "warning",
        "Enrollments took 5 s or more on average from paid to active over the last hour",
    ),
    Rule(
        "RefundRateHigh",
        REFUND_RATE,
        ">",
        0.02,
        DAY,
        "warning",
        "More than 2% of the payments paid in the last 24 hours were refunded",
    ),
    Rule(
        "NoWorkerHeartbeat",
        WORKERS_ALIVE,
        "<",
        1,
        None,
        "critical",
        "No worker process has sent a heartbeat within the heartbeat timeout",
    ),
)

BY_NAME: Mapping[str, Rule] = {rule.name: rule for rule in RULES}


def breached(rule: Rule, value: float | None) -> bool:
    """Whether ``value`` breaks the rule (an unknown value never does)."""
    if value is None:
        return False
    return {
        ">": value > rule.threshold,
        ">=": value >= rule.threshold,
        "<": value < rule.threshold,
        "<=": value <= rule.threshold,
    }[rule.op]


@dataclass(frozen=True)
class RuleState:
    """What was last recorded for a rule: firing since when, and when it last emailed."""

    firing: bool = False
    since: datetime | None = None
    last_email_at: datetime | None = None


@dataclass(frozen=True)
class EmailDue:
    """An email a recorded change owes ops, kept with the change until the outbox has it: ``change``
    (``FIRE``, ``REMIND``, ``RESOLVE``), the firing's ``since``, the change's ``at`` and the value."""

    rule: str
    change: str
    since: datetime
    at: datetime
    value: float | None


#: What one evaluation does for a rule.
FIRE = "firing"  # it starts firing: record and email
REMIND = "reminder"  # it keeps firing and the last email is an hour old: email again
RESOLVE = "resolved"  # it stopped firing: record and email


def transition(firing_now: bool, state: RuleState, now: datetime, remind_every: timedelta = REMIND_EVERY) -> str | None:
    """The change one evaluation makes to a rule's state (and the email it sends), or None."""
    if firing_now and not state.firing:
        return FIRE
    if not firing_now and state.firing:
        return RESOLVE
    if firing_now and (state.last_email_at is None or now - state.last_email_at >= remind_every):
        return REMIND
    return None


def describe(rule: Rule, value: float | None) -> str:
    """The value as a line shows it: ratios as percentages, seconds and counts as numbers."""
    if value is None:
        return "no data"
    if rule.fact in (PAYMENT_SUCCESS_RATE, REFUND_RATE):
        return f"{value:.1%}"
    if rule.fact in (PROCESSING_MEAN, ACTIVATION_MEAN, QUEUE_OLDEST_AGE):
        return f"{value:.1f} s"
    return f"{value:g}"


def threshold_text(rule: Rule) -> str:
    """The rule's condition in words, e.g. ``below 98.0%``."""
    words = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}[rule.op]
    return f"{words} {describe(rule, rule.threshold)}"
