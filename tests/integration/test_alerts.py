"""The email evaluator of the alert rules, each condition caused for real (docs/alerts.md).

The clock is handed in where a rule needs time to pass (a message waiting five minutes, a dead
letter leaving its window, the hour between two emails); nothing here waits for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import dramatiq
import pytest
from starlette.testclient import TestClient

from adapters.alert_sources import build_alert_deps
from adapters.alert_state import MongoAlertStates
from adapters.ingress_counts import IngressCounts
from adapters.outbox import MongoOutbox
from adapters.queue import STRIPE_EVENTS_QUEUE, Broker, event_message, send
from adapters.queue_health import QueueHealth
from adapters.settings import Settings
from devstack.procs import free_port
from domain.alerts import RULES, EmailDue
from ingress.composition import create_app
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.integration.test_ops import ROOT, cli_env
from tests.support import signed, wait_for
from usecases import alerts
from usecases.alerts import Verdict
from usecases.ports import AlertDeps
from workers.composition import Worker, build_worker
from workers.middleware.alerts import AlertEvaluator

SECRET = "whsec_integration"
T = TypeVar("T")


@pytest.fixture
def deps(settings: Settings, db: Any, broker: Broker) -> AlertDeps:
    return build_alert_deps(db, broker, MongoOutbox(db, broker), settings.ops_email)


@contextlib.contextmanager
def running_worker(settings: Settings) -> Iterator[tuple[Worker, dramatiq.Worker]]:
    """A real worker in this process (as the ``worker`` fixture), which the test may stop early."""
    wired = build_worker(settings)
    running = dramatiq.Worker(wired.broker, worker_timeout=50, worker_threads=2)
    running.start()
    try:
        yield wired, running
    finally:
        running.stop()
        wired.close()


def check(deps: AlertDeps, name: str, at: datetime) -> Verdict:
    """Evaluate every rule at ``at``; the verdict on ``name``."""
    return next(v for v in alerts.evaluate(deps, at) if v.rule.name == name)


def emails(db: Any, name: str) -> list[str]:
    """The alert emails queued for one rule, oldest first: ``firing``, ``reminder``, ``resolved``."""
    found = db.notifications.find({"template": "ops_alert", "context.rule": name}).sort("createdAt", 1)
    return [doc["context"]["state"] for doc in found]


def settle(broker: Broker, payment: dict[str, Any], kind: str) -> None:
    """Stripe's event of ``kind`` for the payment, queued for the worker."""
    intent = events.payment_intent(
        kind, payment["paymentId"], payment["amount"], "INR", events.intent_metadata(payment)
    )
    send(broker, event_message(events.event(kind, intent)))


def test_declines_past_the_rate_fire_payment_success_rate_low(deps: AlertDeps, db: Any, settings: Settings) -> None:
    """One payment paid is on target; two declines processed by a real worker put the hour at 1/3."""
    payments = [pending_payment(events.new_id("pi")) for _ in range(3)]
    db.payments.insert_many(payments)
    with running_worker(settings) as (wired, _):
        settle(wired.broker, payments[0], "payment_intent.succeeded")
        wait_for(lambda: db.payments.count_documents({"status": "completed"}) == 1, what="the payment paid")
        paid = check(deps, "PaymentSuccessRateLow", datetime.now(UTC))
        assert (paid.value, paid.firing, emails(db, "PaymentSuccessRateLow")) == (1.0, False, [])
        for payment in payments[1:]:
            settle(wired.broker, payment, "payment_intent.payment_failed")
        wait_for(lambda: db.payments.count_documents({"status": "failed"}) == 2, what="two declines processed")
    declined = check(deps, "PaymentSuccessRateLow", datetime.now(UTC))
    assert declined.firing and declined.value == pytest.approx(1 / 3) and declined.change == "firing"
    assert emails(db, "PaymentSuccessRateLow") == ["firing"]


def test_a_dead_letter_emails_once_on_firing_and_once_on_resolve(deps: AlertDeps, db: Any, settings: Settings) -> None:
    """A job a real worker dead-letters fires EventsDeadLettered: one email, none within the hour, one when
    it leaves the 15-minute window."""
    with running_worker(settings) as (wired, _):
        broken = events.event("payment_intent.succeeded", {"object": "payment_intent"})  # never handled
        send(wired.broker, event_message(broken))
        wait_for(lambda: db.job_failures.find_one({"messageId": broken["id"]}), what="the dead letter")
    at = datetime.now(UTC)
    first = check(deps, "EventsDeadLettered", at)
    assert (first.firing, first.value, first.change, first.emailed) == (True, 1.0, "firing", True)
    for later in (timedelta(minutes=1), timedelta(minutes=10)):
        again = check(deps, "EventsDeadLettered", at + later)
        assert again.firing and again.change is None
    assert emails(db, "EventsDeadLettered") == ["firing"]
    over = check(deps, "EventsDeadLettered", at + timedelta(minutes=16))
    assert (over.firing, over.value, over.change) == (False, 0.0, "resolved")
    assert check(deps, "EventsDeadLettered", at + timedelta(minutes=17)).change is None
    assert emails(db, "EventsDeadLettered") == ["firing", "resolved"]
    mail = db.notifications.find_one({"template": "ops_alert", "context.state": "firing"})
    assert mail["recipient"] == "ops@example.test"
    assert mail["context"]["runbook"] == "docs/runbooks.md#eventsdeadlettered"


def test_a_stuck_queue_fires_after_five_minutes_and_reminds_once_an_hour(
    deps: AlertDeps, db: Any, broker: Broker
) -> None:
    """A message nobody consumes: quiet at first, firing past 300 s, one reminder an hour later, resolved
    once the queue is drained."""
    send(broker, event_message(events.event("payment_intent.succeeded", {"object": "payment_intent"})))
    at = datetime.now(UTC)
    fresh = check(deps, "QueueBacklogOld", at)
    assert not fresh.firing and fresh.value is not None and fresh.value < 5
    stuck = check(deps, "QueueBacklogOld", at + timedelta(minutes=6))
    assert stuck.firing and stuck.value == pytest.approx(360, abs=5)
    assert check(deps, "QueueBacklogOld", at + timedelta(minutes=50)).change is None
    assert check(deps, "QueueBacklogOld", at + timedelta(minutes=67)).change == "reminder"
    assert check(deps, "QueueBacklogOld", at + timedelta(minutes=68)).change is None
    assert emails(db, "QueueBacklogOld") == ["firing", "reminder"]
    broker.flush_all()  # drained (the emails queue too, which the alert emails filled)
    assert check(deps, "QueueBacklogOld", at + timedelta(minutes=69)).change == "resolved"
    assert emails(db, "QueueBacklogOld") == ["firing", "reminder", "resolved"]


class DownOutbox:
    """The outbox while MongoDB refuses its writes: every email raises."""

    def notify_all(self, notices: Any) -> None:
        raise ConnectionError("MongoDB did not answer")


def test_an_email_the_outbox_refused_is_sent_by_the_next_round_once(deps: AlertDeps, db: Any, broker: Broker) -> None:
    """The change is recorded with the email it owes, in one write: an outbox down at that moment (or a
    worker killed right after) loses no email, and the next round hands it over once."""
    send(broker, event_message(events.event("payment_intent.succeeded", {"object": "payment_intent"})))
    at = datetime.now(UTC) + timedelta(minutes=6)
    refused = check(dataclasses.replace(deps, outbox=DownOutbox()), "QueueBacklogOld", at)
    assert (refused.firing, refused.change, refused.emailed) == (True, "firing", False)
    assert emails(db, "QueueBacklogOld") == [] and "QueueBacklogOld" in [d.rule for d in deps.states.owed()]
    later = check(deps, "QueueBacklogOld", at + timedelta(minutes=1))
    assert (later.firing, later.change) == (True, None)  # no new change: the owed email went out
    assert emails(db, "QueueBacklogOld") == ["firing"] and deps.states.owed() == []
    check(deps, "QueueBacklogOld", at + timedelta(minutes=2))
    assert emails(db, "QueueBacklogOld") == ["firing"]
    mail = db.notifications.find_one({"template": "ops_alert", "context.rule": "QueueBacklogOld"})
    assert mail["dedupeKey"] == f"alert:QueueBacklogOld:{alerts_at(at).isoformat()}:firing"


def alerts_at(at: datetime) -> datetime:
    """A time as the evaluator records it (MongoDB keeps milliseconds)."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def test_a_stopped_worker_fires_no_worker_heartbeat(
    deps: AlertDeps, db: Any, settings: Settings, broker: Broker
) -> None:
    """While a worker runs its heartbeat counts it; once stopped, within the heartbeat timeout, none is alive."""
    health = QueueHealth(broker)
    with running_worker(settings):
        wait_for(lambda: health.workers_alive() == 1, what="the worker registered and beating")
        alive = check(deps, "NoWorkerHeartbeat", datetime.now(UTC))
        assert (alive.value, alive.firing) == (1.0, False)
    wait_for(lambda: health.workers_alive() == 0, 10, "its heartbeat to be older than the timeout")
    stopped = check(deps, "NoWorkerHeartbeat", datetime.now(UTC))
    assert (stopped.value, stopped.firing, stopped.change) == (0.0, True, "firing")
    assert emails(db, "NoWorkerHeartbeat") == ["firing"]


class RaceToFire:
    """The state adapter of one evaluator, holding each ``fire`` until every evaluator has read the states
    and decided to fire: all eight writes then race for real."""

    def __init__(self, inner: MongoAlertStates, gate: threading.Barrier) -> None:
        self.inner, self.gate = inner, gate

    def fire(self, name: str, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        self.gate.wait(10)
        return self.inner.fire(name, at, value, due)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_two_evaluators_at_once_send_one_email(settings: Settings, db: Any, broker: Broker) -> None:
    """Eight evaluators (each its own adapters, as eight worker processes) on a firing rule: one email.
    Through the minute's claim only one evaluates; even all deciding at once, one write wins."""
    send(broker, event_message(events.event("payment_intent.succeeded", {"object": "payment_intent"})))
    at = datetime.now(UTC) + timedelta(minutes=6)

    def together(run: Callable[[AlertDeps, int], T], race: bool) -> list[T]:
        start, fire = threading.Barrier(8), threading.Barrier(8)
        results: dict[int, T] = {}

        def one(i: int) -> None:
            own = build_alert_deps(db, broker, MongoOutbox(db, broker), settings.ops_email)
            if race:
                own = dataclasses.replace(own, states=RaceToFire(MongoAlertStates(db), fire))
            start.wait(10)
            results[i] = run(own, i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 8
        return [results[i] for i in range(8)]

    rounds = together(lambda own, i: alerts.run_round(own, f"worker-{i}", at), race=False)
    assert sum(r is not None for r in rounds) == 1
    assert emails(db, "QueueBacklogOld") == ["firing"]
    db.alert_state.delete_many({})  # as if never evaluated: all eight decide to fire, a second apart
    db.notifications.delete_many({})
    verdicts = together(lambda own, i: alerts.evaluate(own, at + timedelta(minutes=1, seconds=i)), race=True)
    backlog = [next(v for v in vs if v.rule.name == "QueueBacklogOld") for vs in verdicts]
    assert all(v.firing for v in backlog) and sum(v.emailed for v in backlog) == 1
    assert emails(db, "QueueBacklogOld") == ["firing"]


def test_the_ingress_counts_refusals_in_batches_for_the_evaluator(
    deps: AlertDeps, db: Any, settings: Settings, broker: Broker
) -> None:
    """Bad signatures and 503s are counted in memory and written in one bulk write per flush (at the latest
    when the app stops); then the workers' evaluator sees them."""
    counts = IngressCounts(db)
    for _ in range(50):
        counts.add("invalid_signature")
    assert db.ingress_counts.count_documents({}) == 0  # nothing written per answer
    assert counts.flush() == 50 and counts.flush() == 0
    assert [d["count"] for d in db.ingress_counts.find()] == [50]
    db.ingress_counts.delete_many({})

    with TestClient(create_app(settings, broker=broker, db=db)) as client:
        body, headers = signed(events.event("payment_intent.succeeded", {"object": "payment_intent"}), "whsec_wrong")
        for _ in range(6):
            assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 400
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(down, db=db)) as client:
        body, headers = signed(events.event("payment_intent.succeeded", {"object": "payment_intent"}), SECRET)
        for _ in range(3):
            assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 503
    verdicts = {v.rule.name: v for v in alerts.evaluate(deps, datetime.now(UTC))}
    assert (verdicts["WebhookSignatureFailures"].value, verdicts["WebhookSignatureFailures"].firing) == (6.0, True)
    assert (verdicts["WebhookBrokerUnavailable"].value, verdicts["WebhookBrokerUnavailable"].firing) == (3.0, True)
    later = {v.rule.name: v for v in alerts.evaluate(deps, datetime.now(UTC) + timedelta(minutes=7))}
    assert not later["WebhookSignatureFailures"].firing and later["WebhookSignatureFailures"].change == "resolved"


def test_metrics_expose_live_workers_and_the_oldest_message_age(settings: Settings, db: Any, broker: Broker) -> None:
    """/metrics has payments_workers_alive and each queue's payments_queue_oldest_message_age_seconds."""
    send(broker, event_message(events.event("payment_intent.succeeded", {"object": "payment_intent"})))
    with TestClient(create_app(settings, broker=broker, db=db)) as client:
        text = client.get("/metrics").text
    assert "payments_workers_alive 0.0" in text  # the ingress beats when it enqueues, but it is no worker
    assert f'payments_queue_oldest_message_age_seconds{{queue="{STRIPE_EVENTS_QUEUE}"}}' in text
    assert 'payments_queue_oldest_message_age_seconds{queue="emails"} 0.0' in text


def test_alerts_check_prints_every_rule_and_emails_a_change_once(settings: Settings, db: Any, broker: Broker) -> None:
    """``payments-ops alerts check`` with no worker running: one line per rule, NoWorkerHeartbeat firing and
    emailed; a second check emails nothing more; exit 0 both times."""
    wait_for(lambda: QueueHealth(broker).workers_alive() == 0, 10, "the other tests' workers to be gone")
    timeout = str(settings.broker_heartbeat_timeout_ms)  # the tests' (short) one, as the workers had it
    env = {**cli_env(settings), "OPS_EMAIL": "ops@example.test", "BROKER_HEARTBEAT_TIMEOUT_MS": timeout}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "payments_ops", *args, "alerts", "check"]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    first = run()
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [rule.name for rule in RULES]
    beat = next(line for line in lines if line.startswith("NoWorkerHeartbeat"))
    assert "FIRING" in beat and "[firing, emailed]" in beat
    assert all(" ok " in line for line in lines if not line.startswith("NoWorkerHeartbeat"))
    second = run("--json")
    assert second.returncode == 0, second.stderr
    rows = {row["rule"]: row for row in json.loads(second.stdout)}
    assert rows["NoWorkerHeartbeat"] == {**rows["NoWorkerHeartbeat"], "state": "firing", "change": None, "value": 0}
    assert emails(db, "NoWorkerHeartbeat") == ["firing"]


def test_a_workers_evaluator_skips_its_boot_round_and_evaluates_from_its_next(
    deps: AlertDeps, db: Any, broker: Broker
) -> None:
    """The boot round evaluates nothing (the worker may not have beaten yet); the next one takes the
    minute and evaluates; without OPS_EMAIL it never evaluates."""
    at = datetime.now(UTC)
    evaluator = AlertEvaluator(deps, broker.broker_id, clock=lambda: at)
    evaluator.round(broker)
    assert db.alert_state.count_documents({}) == 0
    evaluator.round(broker)
    assert db.alert_state.find_one({"_id": "~round"})["holder"] == broker.broker_id
    db.alert_state.delete_many({})
    silent = AlertEvaluator(dataclasses.replace(deps, ops_email=None), "other", clock=lambda: at)
    silent.round(broker)
    silent.round(broker)
    assert db.alert_state.count_documents({}) == 0
