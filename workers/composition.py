"""The worker process's composition root: ``build_worker(settings)`` builds its whole object graph.

Settings → MongoDB → the worker's broker and its middleware → the adapters → the use cases'
dependencies → the actors and the periodic sweeps. This is the one place a worker process picks
concrete adapters; ``workers.entry`` calls it in every process the Dramatiq CLI starts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from dramatiq.middleware import CurrentMessage, Middleware, TimeLimit
from pymongo.database import Database

from adapters.alert_sources import build_alert_deps
from adapters.deps import build_deps
from adapters.failures import MongoFailures
from adapters.indexes import ensure_all_indexes
from adapters.mailer import Mailer
from adapters.mongo import Doc, connect
from adapters.outbox import MongoOutbox
from adapters.queue import send
from adapters.settings import Settings
from adapters.success_metrics import MongoMetricSnapshots, MongoSuccessFacts
from usecases.ports import Deps
from usecases.success_metrics import CachedMeasure
from workers import actors
from workers.broker import WorkerBroker, build_worker_broker
from workers.doctor import declare_probe_actor
from workers.emails import declare_emails_actor
from workers.middleware.alerts import AlertEvaluator
from workers.middleware.dead_workers import RequeueDeadWorkers
from workers.middleware.failures import RecordFailures
from workers.middleware.log_context import LogContext
from workers.middleware.metrics import Metrics
from workers.middleware.retries import DurableRetries
from workers.middleware.stale_work import HealStaleWork
from workers.middleware.stranded import RequeueStrandedDelays
from workers.middleware.success_metrics import MeasureSuccess
from workers.middleware.sweeper import NotificationSweeper, sweep_age
from workers.middleware.unheld import RequeueUnheld


@dataclass(frozen=True)
class Worker:
    broker: WorkerBroker
    deps: Deps
    db: Database[Doc]

    def close(self) -> None:
        self.broker.close()
        self.db.client.close()


def worker_middleware(settings: Settings, extra: Sequence[Middleware] = ()) -> list[Middleware]:
    """The middleware the project uses, with its retry policy; ``extra`` run after retries decided.

    Only what the actors need: no ``Callbacks``, ``Pipelines``, ``AgeLimit`` or shutdown
    notifications, whose options could make a worker enqueue or run what nobody signed. The
    signature was checked before any of them sees a message (``workers.consumer.Consumer``).
    ``extra`` middleware see a message after ``DurableRetries`` decided its fate (Dramatiq calls
    ``after_*`` hooks in reverse order, so they are placed before it in the list).
    """
    return [
        LogContext(),
        TimeLimit(),
        CurrentMessage(),  # the emails actor claims in its message's name
        *extra,
        DurableRetries(
            max_retries=settings.retry_max_retries,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=settings.retry_max_backoff_ms,
        ),
    ]


def dead_worker_interval(settings: Settings) -> float:
    """Seconds between dead-worker rounds: a third of the heartbeat timeout, so a live worker's
    heartbeat is refreshed three times per timeout and a dead one's messages come back within
    about 1.3 timeouts of its death."""
    return settings.broker_heartbeat_timeout_ms / 3000


def build_worker(settings: Settings) -> Worker:
    db = connect(settings.mongodb_uri, settings.mongodb_db)
    ensure_all_indexes(db)
    failures = MongoFailures(db)
    extra = [
        RecordFailures(failures),
        RequeueStrandedDelays(),
        RequeueUnheld(),
        RequeueDeadWorkers(dead_worker_interval(settings)),
        Metrics(),  # after DurableRetries decided: retry or dead letter
    ]
    broker = build_worker_broker(settings, worker_middleware(settings, extra))
    broker.on_refused = failures.refused
    outbox = MongoOutbox(db, broker)  # the handlers write to it, the emails actor and sweep read it
    deps = build_deps(settings, db, broker, outbox=outbox)
    actors.declare(broker, deps, settings)
    declare_emails_actor(broker, outbox, Mailer.from_settings(settings), deps.payments, settings)
    declare_probe_actor(broker)
    every, older_than = settings.notification_sweep_seconds, sweep_age(settings)
    broker.add_middleware(NotificationSweeper(outbox, functools.partial(send, broker), every, older_than=older_than))
    broker.add_middleware(HealStaleWork(deps, every, older_than, settings.refund_max_requeues))
    alert_deps = build_alert_deps(db, broker, outbox, settings.ops_email)
    broker.add_middleware(AlertEvaluator(alert_deps, broker.broker_id))
    measured = CachedMeasure(MongoSuccessFacts(db), MongoMetricSnapshots(db), broker.broker_id)
    broker.add_middleware(MeasureSuccess(measured))
    return Worker(broker=broker, deps=deps, db=db)
