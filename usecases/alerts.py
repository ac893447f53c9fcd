"""Evaluate the alert rules (``domain.alerts``) and email ``OPS_EMAIL`` on each change.

``gather`` reads every fact the rules compare; a source that cannot be read (Redis or MongoDB
away) leaves its facts unknown, and an unknown fact never fires a rule. ``evaluate`` compares
each fact with its rule and, when a rule starts firing, keeps firing an hour after its last
email, or resolves, records that with a conditional write: only the evaluator whose write
matched emails, through the outbox under a dedupe key of the rule, the start of the firing and
the kind of email, so a retry never sends twice. The workers call ``run_round`` every minute
(one of them evaluates: ``AlertStates.claim_round``); ``payments-ops alerts check`` calls
``evaluate`` at once. docs/alerts.md tells the rules and their settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain import alerts
from domain.alerts import RULES, EmailDue, Rule, RuleState
from usecases import success_metrics
from usecases.ports import AlertDeps, Notice

log = logging.getLogger(__name__)

RULE_BY_NAME = {rule.name: rule for rule in RULES}
#: How often the workers evaluate the rules.
EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    value: float | None
    firing: bool
    #: What this evaluation recorded (``domain.alerts.FIRE``, ``REMIND``, ``RESOLVE``), or None.
    change: str | None
    #: Whether an email to ops was queued for it.
    emailed: bool

    @property
    def line(self) -> str:
        state = "FIRING" if self.firing else "ok"
        value = alerts.describe(self.rule, self.value)
        return f"{self.rule.name:<26} {state:<6}  {value} (fires {alerts.threshold_text(self.rule)})"


def _to_millis(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _read(what: str, read: Callable[[], Mapping[str, float | None]]) -> Mapping[str, float | None]:
    try:
        return read()
    except Exception as error:  # one source away must not hide the others' alerts
        log.warning("alert facts not read: %s", what, extra={"error": repr(error)})
        return {}


def gather(deps: AlertDeps, at: datetime) -> dict[str, float | None]:
    """Every fact the rules read, as of ``at``; those whose source could not be read are None."""
    ms = _millis(at)

    def queues() -> Mapping[str, float | None]:
        ages = deps.health.oldest_ages(ms)
        return {
            alerts.WORKERS_ALIVE: float(deps.health.workers_alive(ms)),
            alerts.QUEUE_OLDEST_AGE: max(ages.values(), default=0.0),
        }

    def refusals() -> Mapping[str, float | None]:
        counts = deps.refusals.since(at - alerts.SHORT)
        return {
            alerts.SIGNATURE_FAILURES: float(counts.get("invalid_signature", 0)),
            alerts.BROKER_UNAVAILABLE: float(counts.get("broker_unavailable", 0)),
        }

    def dead() -> Mapping[str, float | None]:
        return {alerts.DEAD_LETTERS: float(deps.dead_letters.dead_since(at - alerts.DEAD_LETTER_WINDOW))}

    facts: dict[str, float | None] = dict.fromkeys((rule.fact for rule in RULES), None)
    facts.update(_read("redis queues", queues))
    facts.update(_read("ingress counts", refusals))
    facts.update(_read("dead letters", dead))
    facts.update(_read("success metrics", lambda: success_facts(deps, at)))
    return facts


def success_facts(deps: AlertDeps, at: datetime) -> dict[str, float | None]:
    """The success metrics the rules read, measured as the metrics page does (``usecases.success_metrics``)."""
    hour = success_metrics.measure(deps.success, "1h", now=at)
    day = success_metrics.measure(deps.success, "24h", now=at)
    return {
        alerts.PAYMENT_SUCCESS_RATE: hour["paymentSuccessRate"]["value"],
        alerts.PROCESSING_MEAN: hour["processingSeconds"]["mean"],
        alerts.ACTIVATION_MEAN: hour["activationSeconds"]["mean"],
        alerts.REFUND_RATE: day["refundRate"]["value"],
    }


def _record(deps: AlertDeps, state: RuleState, change: EmailDue) -> bool:
    """Record the change with the email it owes (when ops have an address), in one conditional write;
    True if this evaluator recorded it."""
    name, at, value = change.rule, change.at, change.value
    due = change if deps.ops_email else None
    if change.change == alerts.FIRE:
        return deps.states.fire(name, at, value, due)
    if change.change == alerts.REMIND:
        return deps.states.remind(name, state, at, value, due)
    return deps.states.resolve(name, state, at, value, due)


def _email(deps: AlertDeps, due: EmailDue) -> bool:
    """Hand the email a recorded change owes to the outbox (once: its dedupe key), then forget it."""
    rule = RULE_BY_NAME.get(due.rule)
    if not deps.ops_email or rule is None:
        return False
    key = f"alert:{rule.name}:{due.since.isoformat()}:{due.change}"
    if due.change == alerts.REMIND:
        key += f":{due.at.isoformat()}"
    context = {
        "rule": rule.name,
        "state": due.change,
        "severity": rule.severity,
        "summary": rule.summary,
        "value": alerts.describe(rule, due.value),
        "threshold": alerts.threshold_text(rule),
        "since": f"{due.since:%Y-%m-%d %H:%M} UTC",
        "runbook": f"docs/runbooks.md#{rule.name.lower()}",
    }
    deps.outbox.notify_all([Notice(key, "ops_alert", deps.ops_email, context)])
    deps.states.paid(due)
    return True


def _owed(deps: AlertDeps) -> None:
    """Emails recorded changes still owe (their evaluator died, or the outbox failed): handed over now."""
    for due in deps.states.owed():
        try:
            _email(deps, due)
        except Exception:  # still owed: the next round tries again
            log.exception("alert email still owed", extra={"alert": due.rule, "outcome": due.change})


def evaluate(deps: AlertDeps, at: datetime | None = None) -> list[Verdict]:
    """One evaluation of every rule at ``at`` (default: now): its verdicts, in the table's order."""
    at = _to_millis(at or datetime.now(UTC))  # as MongoDB keeps it, so a state read back matches
    facts = gather(deps, at)
    _owed(deps)
    states = deps.states.states()
    verdicts = []
    for rule in RULES:
        value = facts.get(rule.fact)
        firing = alerts.breached(rule, value)
        state = states.get(rule.name, RuleState())
        change = alerts.transition(firing, state, at)
        emailed = False
        since = at if change == alerts.FIRE else (state.since or at)
        if change is not None and _record(deps, state, made := EmailDue(rule.name, change, since, at, value)):
            log.warning("alert %s %s", rule.name, change, extra={"alert": rule.name, "outcome": change})
            emailed = _send_now(deps, made)
        else:
            change = None  # nothing to record, or another evaluator recorded it first
        verdicts.append(Verdict(rule, value, firing, change, emailed))
    return verdicts


def _send_now(deps: AlertDeps, due: EmailDue) -> bool:
    try:
        return _email(deps, due)
    except Exception:  # recorded as owed with the change: the next round sends it
        log.exception("alert email not queued; the next round tries again", extra={"alert": due.rule})
        return False


def run_round(
    deps: AlertDeps, holder: str, at: datetime | None = None, every: timedelta = EVERY
) -> list[Verdict] | None:
    """The workers' minute: evaluate if this round is ours (None when another worker has it)."""
    at = at or datetime.now(UTC)
    if not deps.states.claim_round(holder, at, every):
        return None
    return evaluate(deps, at)
