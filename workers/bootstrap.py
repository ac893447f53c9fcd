"""The one place a worker process wires real adapters to the rules and the broker."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.brokers.redis import RedisBroker
from pymongo.database import Database

from adapters.failures import MongoFailures
from adapters.mongo import Doc, MongoInbox, MongoPayments, connect, ensure_indexes
from adapters.settings import Settings
from adapters.stripe_gateway import StripeGateway, build_client
from domain.ports import Deps
from workers import actors
from workers.broker import build_broker
from workers.middleware.failures import RecordFailures
from workers.middleware.log_context import LogContext


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
    ensure_indexes(db)
    deps = Deps(
        payments=MongoPayments(db),
        inbox=MongoInbox(db),
        stripe=StripeGateway(build_client(settings)),
    )
    broker = build_broker(settings, extra=[LogContext(), RecordFailures(MongoFailures(db))])
    actors.declare(broker, deps, settings)
    return Worker(broker=broker, deps=deps, db=db)
