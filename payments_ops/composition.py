"""The ops command's composition root: ``connect_ops(settings)`` builds what every command acts with.

Settings → MongoDB and the broker → the adapters → the use cases' dependencies (the core ones and
the ops service's) and the payment reads. This is the one place ``payments-ops`` picks concrete
adapters; ``payments_ops.cli`` parses the command, finds the settings and calls it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.alert_sources import build_alert_deps
from adapters.deps import build_deps, build_ops
from adapters.mongo import connect
from adapters.queue import build_broker
from adapters.reads import MongoPaymentReads
from adapters.settings import Settings
from usecases.ports import AlertDeps, Deps, OpsDeps


@dataclass
class Connected:
    deps: OpsDeps
    core: Deps
    reads: MongoPaymentReads
    db: Any  # simulate stores a pending payment in it first
    close: Callable[[], None]
    alerts: AlertDeps  # alerts check evaluates as the workers do


def connect_ops(settings: Settings) -> Connected:
    db = connect(settings.mongodb_uri, settings.mongodb_db)
    broker = build_broker(settings)

    def close() -> None:
        broker.close()
        db.client.close()

    core = build_deps(settings, db, broker)
    alerts = build_alert_deps(db, broker, core.outbox, settings.ops_email)
    return Connected(build_ops(settings, db, broker), core, MongoPaymentReads(db), db, close, alerts)
