"""The one place a worker process wires real adapters to the rules and the broker."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.brokers.redis import RedisBroker
from pymongo.database import Database

from adapters.failures import MongoFailures
from adapters.mailer import Mailer
from adapters.mongo import Doc, connect
from adapters.outbox import MongoOutbox
from adapters.settings import Settings
from adapters.wiring import build_deps, ensure_all_indexes
from domain.ports import Deps
from workers import actors
from workers.broker import build_broker
from workers.emails import NotificationSweeper, declare_emails_actor, sweep_age
from workers.middleware.failures import RecordFailures
from workers.middleware.log_context import LogContext
from workers.middleware.stranded import RequeueStrandedDelays


@dataclass(frozen=True)
class Worker:
    broker: RedisBroker
    deps: Deps
    db: Database[Doc]

    def close(self) -> None:
        self.broker.close()
        self.db.client.close()


def bootstrap(settings: Settings) -> Worker:
    db = connect(settings.mongodb_uri, settings.mongodb_db)
    ensure_all_indexes(db)
    broker = build_broker(settings, extra=[LogContext(), RecordFailures(MongoFailures(db)), RequeueStrandedDelays()])
    outbox = MongoOutbox(db, broker)  # the handlers write to it, the emails actor and sweep read it
    deps = build_deps(settings, db, broker, outbox=outbox)
    actors.declare(broker, deps, settings)
    declare_emails_actor(broker, outbox, Mailer.from_settings(settings), settings)
    broker.add_middleware(
        NotificationSweeper(outbox, broker.enqueue, settings.notification_sweep_seconds, older_than=sweep_age(settings))
    )
    return Worker(broker=broker, deps=deps, db=db)
