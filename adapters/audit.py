"""``ops_audit``: who did what to the failed jobs, and when (one document per real run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now


class MongoAudit:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.ops_audit

    def record(self, who: str, action: str, selection: Mapping[str, Any], count: int) -> None:
        self.collection.insert_one(
            {"who": who, "action": action, "selection": dict(selection), "count": count, "at": now()}
        )
