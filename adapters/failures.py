"""``job_failures``: the project's own record of every job that failed for good.

It outlives Dramatiq's 7-day dead letters and keeps the encoded message, so ops can replay it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.compat.dramatiq import DELAY_SUFFIX
from adapters.mongo import Doc, now
from adapters.queue import Refused
from usecases.ports import CLAIMED, FailureSelection, StoredFailure

#: How long a replay or purge holds a record it claimed: far longer than acting on one record
#: takes, so a claim a crash left behind is taken back after it, and never a live one's.
CLAIM_LEASE = timedelta(minutes=5)


def _millis(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if isinstance(value, int) else None


def _stripe_event(args: Any) -> dict[str, Any]:
    """Event id, type and payment (its PaymentIntent) when the job's first argument is a Stripe event;
    the payment alone when it is a PaymentIntent id (a refund job)."""
    event = args[0] if isinstance(args, list | tuple) and args else None
    if isinstance(event, str) and event.startswith("pi_"):
        return {"paymentId": event}  # a refund job names its payment's intent first
    if not (isinstance(event, dict) and isinstance(event.get("id"), str)):
        return {}
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    intent = None
    if isinstance(obj, dict):
        intent = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    return {
        "eventId": event["id"],
        "eventType": event.get("type"),
        "paymentId": intent if isinstance(intent, str) else None,
    }


class MongoFailures:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.job_failures
        self.events: Collection[Doc] = db.stripe_events

    def refused(self, refused: Refused) -> None:
        """A message a worker refused to run (not the project's, or not even a message): recorded with
        the reason, as it was stored. What it claims (an event, a payment) is not believed: the
        inbox is left alone, so a forged message cannot mark a real event failed."""
        message = refused.message
        stamp = now()
        self.collection.insert_one(
            {
                "messageId": message.message_id if message is not None else refused.redis_id,
                "redisMessageId": refused.redis_id,
                "queue": refused.queue.removesuffix(DELAY_SUFFIX),
                "actor": message.actor_name if message is not None else None,
                "message": refused.data.decode(errors="replace"),
                "error": f"Unsigned: {refused.reason}",
                "traceback": "",
                "attempts": 1,
                "firstFailedAt": stamp,
                "lastFailedAt": stamp,
                "state": "dead",
                "refused": True,
            }
        )

    def record(self, message: dict[str, Any], encoded: str, error: BaseException, trace: str) -> None:
        options = message.get("options", {})
        last = now()
        event = _stripe_event(message.get("args"))
        reason = f"{type(error).__name__}: {error}"
        if event.get("eventId"):
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
                "queue": message["queue_name"].removesuffix(DELAY_SUFFIX),
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


def failure_view(doc: Doc) -> dict[str, Any]:
    """A ``job_failures`` record as ops see it; the encoded message stays out (``message`` is the decoded one)."""
    from dramatiq import Message

    message: dict[str, Any] = {}
    try:
        decoded = Message.decode(str(doc.get("message", "")).encode())
        message = {"args": list(decoded.args), "kwargs": decoded.kwargs}
    except Exception:  # a record whose message no longer decodes is still shown
        message = {"undecodable": True}
    return {
        "id": str(doc["_id"]),
        "messageId": doc.get("messageId"),
        "queue": doc.get("queue"),
        "actor": doc.get("actor"),
        "eventId": doc.get("eventId"),
        "eventType": doc.get("eventType"),
        "paymentId": doc.get("paymentId"),
        "error": doc.get("error"),
        "traceback": doc.get("traceback"),
        "attempts": doc.get("attempts"),
        "firstFailedAt": doc.get("firstFailedAt"),
        "lastFailedAt": doc.get("lastFailedAt"),
        "state": doc.get("state"),
        "message": message,
        **{k: doc[k] for k in ("replayedAt", "replayedBy", "purgedAt", "purgedBy", "claimedBy") if k in doc},
    }


def _state(state: str) -> dict[str, Any]:
    """The filter for a state; ``dead`` includes a claim a crashed replay or purge left past its lease."""
    if state != "dead":
        return {"state": state}
    return {"$or": [{"state": "dead"}, {"state": {"$in": list(CLAIMED)}, "claimUntil": {"$lte": now()}}]}


def failure_query(selection: FailureSelection) -> dict[str, Any]:
    """The MongoDB filter for an ops selection (ids win over the other fields, except the state)."""
    state = _state(selection.state) if selection.state else {}
    if selection.ids:
        return {"_id": {"$in": [ObjectId(i) for i in selection.ids]}, **state}
    query: dict[str, Any] = dict(state)
    for field, value in (("queue", selection.queue), ("actor", selection.actor)):
        if value:
            query[field] = value
    if selection.error:
        query["error"] = {"$regex": re.escape(selection.error), "$options": "i"}
    if selection.since or selection.until:
        bounds = {"$gte": selection.since} if selection.since else {}
        query["lastFailedAt"] = {**bounds, **({"$lt": selection.until} if selection.until else {})}
    return query


class FailureRecords:
    """Reads and state changes of ``job_failures`` for ops (the worker writes them: ``MongoFailures``)."""

    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.job_failures

    def page(
        self, selection: FailureSelection, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest failures first, ``limit`` at a time; ``after`` is the last id of the previous page."""
        query = failure_query(selection)
        if after:
            query = {"$and": [query, {"_id": {"$lt": ObjectId(after)}}]}
        docs = list(self.collection.find(query).sort("_id", DESCENDING).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return [failure_view(d) for d in docs], (str(docs[-1]["_id"]) if more and docs else None)

    def get(self, failure_id: str) -> dict[str, Any] | None:
        doc = self.collection.find_one({"_id": ObjectId(failure_id)})
        return failure_view(doc) if doc else None

    def select(self, selection: FailureSelection) -> list[StoredFailure]:
        """Every failure the selection names, oldest first, with its encoded message."""
        cursor = self.collection.find(failure_query(selection)).sort("_id", ASCENDING)
        return [
            StoredFailure(
                str(d["_id"]),
                str(d.get("queue")),
                d.get("redisMessageId"),
                str(d.get("message", "")),
                d.get("eventId") if isinstance(d.get("eventId"), str) else None,
            )
            for d in cursor
        ]

    def claim(self, failure_id: str, state: str, by: str) -> str | None:
        """Take a dead record for a replay or purge (``state``: replaying or purging); its token, or None.

        One conditional write: only a ``dead`` record, or one whose claim a crash left past its
        lease, is taken, so two runs never both act on one record.
        """
        at, token = now(), uuid4().hex
        done = self.collection.update_one(
            {"_id": ObjectId(failure_id), **_state("dead")},
            {
                "$set": {
                    "state": state,
                    "claimedBy": by,
                    "claimedAt": at,
                    "claimUntil": at + CLAIM_LEASE,
                    "claimToken": token,
                }
            },
        )
        return token if done.modified_count == 1 else None

    def mark(self, failure_id: str, state: str, by: str, token: str) -> bool:
        """The claimed record's end state (``replayed``, ``purged``), while ``token`` still holds it; True if now."""
        at = now()
        done = self.collection.update_one(
            {"_id": ObjectId(failure_id), "claimToken": token},
            {
                "$set": {"state": state, f"{state}At": at, f"{state}By": by},
                "$unset": {"claimToken": "", "claimUntil": ""},
            },
        )
        return done.modified_count == 1

    def release(self, failure_id: str, token: str) -> None:
        """Give a claimed record back (``dead``) after its action failed, while ``token`` still holds it."""
        self.collection.update_one(
            {"_id": ObjectId(failure_id), "claimToken": token},
            {"$set": {"state": "dead"}, "$unset": {"claimToken": "", "claimUntil": ""}},
        )
