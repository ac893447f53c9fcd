"""``ops_jobs``: ops runs that go on after their request was answered (a replay at a rate), and how far they got.

A job runs in a thread of the process that was asked (see ``ingress.ops``). Its document is the
only shared state: any ingress process answers ``GET /ops/api/jobs/{id}`` from it. A job whose
process died stays ``running`` with the progress last written (``updatedAt`` stops moving); what
it had not replayed is still ``dead``, so asking for the same replay again finishes it. Documents
are dropped 30 days after their last write (TTL index); the audit keeps the record for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now
from usecases.ports import Operator

KEEP = timedelta(days=30)


def ensure_ops_job_indexes(db: Database[Doc]) -> None:
    db.ops_jobs.create_index(
        [("updatedAt", ASCENDING)], expireAfterSeconds=int(KEEP.total_seconds()), name="updated_ttl"
    )


class MongoOpsJobs:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.ops_jobs

    def create(self, who: Operator, action: str, selection: Mapping[str, Any], total: int) -> str:
        at = now()
        doc = {"who": who.name, "via": who.via, "action": action, "selection": dict(selection), "total": total,
               "done": 0, "state": "running", "startedAt": at, "updatedAt": at}  # fmt: skip
        return str(self.collection.insert_one(doc).inserted_id)

    def update(self, job_id: str, done: int, state: str = "running", result: Mapping[str, Any] | None = None) -> None:
        at = now()
        change: Doc = {"done": done, "state": state, "updatedAt": at}
        if state != "running":
            change.update(finishedAt=at, result=dict(result or {}))
        self.collection.update_one({"_id": ObjectId(job_id), "state": "running"}, {"$set": change})

    def get(self, job_id: str) -> dict[str, Any] | None:
        try:
            doc = self.collection.find_one({"_id": ObjectId(job_id)})
        except InvalidId:
            return None
        if doc is None:
            return None
        fields = ("action", "state", "done", "total", "who", "via", "selection", "result")
        times = ("startedAt", "updatedAt", "finishedAt")
        return {"jobId": str(doc["_id"]), **{k: doc.get(k) for k in fields + times if k in doc}}
