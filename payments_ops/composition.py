"""The ops command's composition root: ``connect_ops(settings)`` builds what every command acts with.

Settings → MongoDB and the broker → the adapters → the use cases' dependencies (the core ones and
the ops service's) and the payment reads. This is the one place ``payments-ops`` picks concrete
adapters; ``payments_ops.cli`` parses the command, finds the settings and calls it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.alert_sources import build_alert_deps
from adapters.deps import build_deps, build_ops
from adapters.mongo import connect
from adapters.queue import Broker, build_broker
from adapters.reads import MongoPaymentReads
from adapters.settings import Settings
from adapters.story import MongoStory
from adapters.stripe_gateway import StripeGateway, build_client
from usecases.ports import AlertDeps, Deps, OpsDeps
from usecases.story import StoryDeps


@dataclass
class Connected:
    deps: OpsDeps
    core: Deps
    reads: MongoPaymentReads
    db: Any  # simulate stores a pending payment in it first
    close: Callable[[], None]
    story: StoryDeps
    broker: Broker  # the doctor sends its probe with it
    alerts: AlertDeps  # alerts check evaluates as the workers do


def connect_ops(settings: Settings) -> Connected:
    db = connect(settings.mongodb_uri, settings.mongodb_db)
    broker = build_broker(settings)

    def close() -> None:
        broker.close()
        db.client.close()

    gateway = StripeGateway(build_client(settings))
    core = build_deps(settings, db, broker, gateway)
    story = StoryDeps(MongoStory(db), gateway, lambda: datetime.now(UTC))
    alerts = build_alert_deps(db, broker, core.outbox, settings.ops_email)
    ops = build_ops(settings, db, broker)
    return Connected(ops, core, MongoPaymentReads(db), db, close, story, broker, alerts)
