"""The ``stripe_events`` inbox (docs/data.md#stripe_events-the-inbox): each Stripe event recorded once by its id.

A delivery is recorded before the worker acts on it; a processed or ignored event is skipped on
redelivery; an event left ``received`` is found by the stale-work sweep and queued again. An event
ops purged (its failed job dropped for good) is ``purged``: finished, like a processed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson.errors import InvalidDocument
from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from adapters.mongo import Doc, now
from domain.events import StripeEvent
from domain.success_metrics import WEBHOOK

#: Statuses a rejected redelivery leaves as they are.
DONE = ["processed", "ignored", "purged"]


class MongoInbox:
    """The ``stripe_events`` inbox, keyed by Stripe's event id."""

    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.stripe_events

    def receive(self, event: StripeEvent, source: str = WEBHOOK) -> str:
        update = {
            "$setOnInsert": {
                "type": event.type,
                "created": event.created_at,
                "objectId": event.object_id,
                "payload": dict(event.payload),
                "status": "received",
                "receivedAt": now(),
                "source": source,  # the first arrival's: set on insert only
            },
            "$set": {"lastAttemptAt": now()},
            "$inc": {"attempts": 1},
        }
        for _ in range(2):
            try:
                # Only the status comes back: the stored payload is the event the caller holds.
                doc = self.collection.find_one_and_update(
                    {"_id": event.id},
                    update,
                    upsert=True,
                    projection={"status": 1},
                    return_document=ReturnDocument.AFTER,
                )
                return str(doc["status"]) if doc else "received"
            except DuplicateKeyError:
                # Two deliveries upserted at once on MongoDB; the other insert won, so update it.
                continue
        raise RuntimeError(f"could not record event {event.id}")

    def finish(self, event_id: str, status: str) -> None:
        self.collection.update_one(
            {"_id": event_id}, {"$set": {"status": status, "processedAt": now()}, "$unset": {"error": ""}}
        )

    def stale(self, older_than: timedelta, limit: int = 500) -> list[dict[str, Any]]:
        """Payloads of events still ``received`` whose last attempt is older than ``older_than``."""
        cursor = self.collection.find(
            {"status": "received", "lastAttemptAt": {"$lte": now() - older_than}}, {"payload": 1}, limit=limit
        ).sort("lastAttemptAt", ASCENDING)
        return [dict(doc["payload"]) for doc in cursor if isinstance(doc.get("payload"), dict)]

    def status_of(self, event_id: str) -> str | None:
        doc = self.collection.find_one({"_id": event_id}, {"status": 1})
        return str(doc["status"]) if doc else None

    def oldest_unfinished(self) -> datetime | None:
        doc = self.collection.find_one(
            {"status": {"$in": ["received", "failed"]}}, {"receivedAt": 1}, sort=[("receivedAt", ASCENDING)]
        )
        return doc.get("receivedAt") if doc else None

    def unfinished(self, older_than: timedelta, limit: int = 500) -> list[dict[str, Any]]:
        query = {"status": {"$in": ["received", "failed"]}, "receivedAt": {"$lte": now() - older_than}}
        fields = {"type": 1, "status": 1, "attempts": 1, "receivedAt": 1, "lastAttemptAt": 1, "error": 1}
        found = self.collection.find(query, fields, limit=limit).sort("receivedAt", ASCENDING)
        return [{"id": doc.pop("_id"), **doc} for doc in found]

    def payload(self, event_id: str) -> dict[str, Any] | None:
        doc = self.collection.find_one({"_id": event_id}, {"payload": 1})
        return dict(doc["payload"]) if doc and isinstance(doc.get("payload"), dict) else None

    def purge(self, event_id: str, by: str) -> None:
        """``purged``: ops dropped the event's failed job for good, so nothing queues it again.

        An event processed or ignored meanwhile (a replay got through) keeps its status.
        """
        self.collection.update_one(
            {"_id": event_id, "status": {"$in": ["received", "failed"]}},
            {"$set": {"status": "purged", "purgedAt": now(), "purgedBy": by}},
        )

    def fail(self, event_id: str, error: str) -> None:
        self.collection.update_one({"_id": event_id}, {"$set": {"status": "failed", "error": error, "failedAt": now()}})

    def reject(self, event_id: str, payload: Mapping[str, Any], error: str, source: str = WEBHOOK) -> None:
        """Record a delivery that does not parse, ``failed`` with the reason, unless it is done already.

        Its payload is kept for ops as ``receive`` keeps it; one BSON cannot hold (an integer
        beyond 64 bits) is left out, and the job's failure record still has the message.
        """
        at = now()
        kind = payload.get("type")
        stored: dict[str, Any] = {"type": kind if isinstance(kind, str) else None, "receivedAt": at, "source": source}
        for kept in ({"payload": dict(payload)}, {}):
            update = {
                "$setOnInsert": {**stored, **kept},
                "$set": {"status": "failed", "error": error, "failedAt": at, "lastAttemptAt": at},
                "$inc": {"attempts": 1},
            }
            try:
                self.collection.update_one({"_id": event_id, "status": {"$nin": DONE}}, update, upsert=True)
                return
            except DuplicateKeyError:
                return  # processed or ignored before: a redelivery changes nothing
            except (OverflowError, InvalidDocument):
                continue
