"""The one place a worker process wires real adapters to the use cases and the broker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)
from pymongo.database import Database

from adapters.failures import MongoFailures
from adapters.mailer import Mailer
from adapters.mongo import Doc, connect
from adapters.outbox import MongoOutbox
from adapters.queue import build_broker
from adapters.settings import Settings
from adapters.wiring import build_deps, ensure_all_indexes
from usecases.ports import Deps
from workers import actors
from workers.emails import declare_emails_actor
from workers.middleware.authenticity import VerifySignatures
from workers.middleware.dead_workers import RequeueDeadWorkers
from workers.middleware.failures import RecordFailures
from workers.middleware.log_context import LogContext
from workers.middleware.metrics import Metrics
from workers.middleware.retries import DurableRetries
from workers.middleware.stale_work import HealStaleWork
from workers.middleware.stranded import RequeueStrandedDelays
from workers.middleware.sweeper import NotificationSweeper, sweep_age


@dataclass(frozen=True)
class Worker:
    broker: RedisBroker
    deps: Deps
    db: Database[Doc]

    def close(self) -> None:
        self.broker.close()
        self.db.client.close()


def worker_middleware(settings: Settings, extra: Sequence[Middleware] = ()) -> list[Middleware]:
    """Dramatiq's middleware with the retry policy of DESIGN §3; ``extra`` run after retries decided.

    Every message is checked for the project's signature before anything acts on it (log ids
    first, so the refusal is logged with them). ``extra`` middleware see a message after
    ``DurableRetries`` decided its fate (Dramatiq calls ``after_*`` hooks in reverse order, so
    they are placed before it in the list).
    """
    return [
        LogContext(),
        VerifySignatures(settings.queue_signing_key),
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        CurrentMessage(),  # the emails actor claims in its message's name
        Callbacks(),
        Pipelines(),
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


def bootstrap(settings: Settings) -> Worker:
    db = connect(settings.mongodb_uri, settings.mongodb_db)
    ensure_all_indexes(db)
    extra = [
        RecordFailures(MongoFailures(db)),
        RequeueStrandedDelays(),
        RequeueDeadWorkers(dead_worker_interval(settings)),
        Metrics(),  # after DurableRetries decided: retry or dead letter
    ]
    broker = build_broker(settings, worker_middleware(settings, extra))
    outbox = MongoOutbox(db, broker)  # the handlers write to it, the emails actor and sweep read it
    deps = build_deps(settings, db, broker, outbox=outbox)
    actors.declare(broker, deps, settings)
    declare_emails_actor(broker, outbox, Mailer.from_settings(settings), deps.payments, settings)
    every, older_than = settings.notification_sweep_seconds, sweep_age(settings)
    broker.add_middleware(NotificationSweeper(outbox, broker.enqueue, every, older_than=older_than))
    broker.add_middleware(HealStaleWork(deps, every, older_than))
    return Worker(broker=broker, deps=deps, db=db)
