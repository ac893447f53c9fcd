"""``job_failures``: the project's own record of every job that failed for good.

It outlives Dramatiq's 7-day dead letters and keeps the encoded message, so ops can replay it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now


def _millis(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if isinstance(value, int) else None


def _stripe_event(args: Any) -> dict[str, Any]:
    """Event id and type when the job's first argument is a Stripe event."""
    event = args[0] if isinstance(args, list | tuple) and args else None
    if isinstance(event, dict) and isinstance(event.get("id"), str):
        return {"eventId": event["id"], "eventType": event.get("type")}
    return {}


class MongoFailures:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.job_failures
        self.events: Collection[Doc] = db.stripe_events

    def record(self, message: dict[str, Any], encoded: str, error: BaseException, trace: str) -> None:
        options = message.get("options", {})
        last = now()
        event = _stripe_event(message.get("args"))
        reason = f"{type(error).__name__}: {error}"
        if event:
            # The inbox says the event failed for good (ops replay it), so the stale-work sweep,
            # which re-queues events left ``received``, does not send it round again.
            self.events.update_one(
                {"_id": event["eventId"], "status": "received"},
                {"$set": {"status": "failed", "error": reason, "failedAt": last}},
            )
        self.collection.insert_one(
            {
                "messageId": message["message_id"],
                "redisMessageId": options.get("redis_message_id"),
                "queue": message["queue_name"].removesuffix(".DQ"),
                "actor": message["actor_name"],
                **event,
                "message": encoded,
                "error": reason,
                "traceback": trace,
                "attempts": int(options.get("failed_attempts", 1)),
                "firstFailedAt": _millis(options.get("first_failed_at")) or last,
                "lastFailedAt": last,
                "state": "dead",
            }
        )
