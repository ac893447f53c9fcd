"""The alert evaluator's dependencies (``usecases.ports.AlertDeps``), from one database and one broker.

Built by the worker's and the ops command's composition roots alike, so both evaluate the same way.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.database import Database

from adapters.alert_state import MongoAlertStates
from adapters.ingress_counts import IngressCounts
from adapters.mongo import Doc
from adapters.queue import Broker
from adapters.queue_health import QueueHealth
from adapters.success_metrics import MongoSuccessFacts
from usecases.ports import FAILURE_STATES, AlertDeps, Outbox


class MongoDeadLetters:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection = db.job_failures

    def dead_since(self, start: datetime) -> int:
        # Every record, whatever ops did with it since: a job that failed for good is what the rule counts.
        # The states listed let the ``state_recent`` index (state, lastFailedAt) serve the range.
        every_state = {"$in": list(FAILURE_STATES)}
        return self.collection.count_documents({"state": every_state, "lastFailedAt": {"$gte": start}})


def build_alert_deps(db: Database[Doc], broker: Broker, outbox: Outbox, ops_email: str | None) -> AlertDeps:
    return AlertDeps(
        health=QueueHealth(broker),
        dead_letters=MongoDeadLetters(db),
        refusals=IngressCounts(db),
        success=MongoSuccessFacts(db),
        states=MongoAlertStates(db),
        outbox=outbox,
        ops_email=ops_email,
    )
