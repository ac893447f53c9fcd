"""``ops_audit``: who did what to the failed jobs and the payments, and when; append-only.

Every document has ``who`` (the person's name), ``via`` (the door: ``payments-ops``, ``ops-api``,
``ops-dashboard``), ``action``, ``selection``, ``count``, ``state`` and ``at``. A one-step action
(a review, an event replayed) is one ``finished`` record. A run (replay, purge, reconcile) writes a
``started`` record before it touches anything (``count``: what it selected) and another when it
ends (``finished``, ``stopped`` or ``failed``; ``count``: what it did), both with the same ``run``
id; a run whose process died has a start and no end. Readers that want what was done read the
``finished`` records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now
from usecases.ports import Operator


class MongoAuditRun:
    """One run's records: the start is written already, ``finish`` writes the end."""

    def __init__(self, collection: Collection[Doc], base: Doc) -> None:
        self.collection = collection
        self.base = base

    def finish(self, count: int, state: str = "finished", detail: Mapping[str, Any] | None = None) -> None:
        end = {**self.base, "count": count, "state": state, "startedAt": self.base["at"], "at": now()}
        self.collection.insert_one({**end, **({"detail": dict(detail)} if detail else {})})


class MongoAudit:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.ops_audit

    def _doc(self, who: Operator, action: str, selection: Mapping[str, Any], count: int, state: str) -> Doc:
        return {"who": who.name, "via": who.via, "action": action, "selection": dict(selection), "count": count,
                "state": state, "at": now()}  # fmt: skip

    def record(self, who: Operator, action: str, selection: Mapping[str, Any], count: int) -> None:
        self.collection.insert_one(self._doc(who, action, selection, count, "finished"))

    def start(self, who: Operator, action: str, selection: Mapping[str, Any], count: int) -> MongoAuditRun:
        base = {**self._doc(who, action, selection, count, "started"), "run": ObjectId()}
        self.collection.insert_one(dict(base))
        base.pop("_id", None)
        return MongoAuditRun(self.collection, base)
