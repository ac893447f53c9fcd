"""The reads of one payment's story (``usecases.story``) across the collections, each on an index,
and the story as JSON for the ops API and ``payments-ops payment --json``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from adapters.mongo import Doc
from adapters.serialize import jsonable, payment_json

#: Fields of a failure record the story shows (the message and traceback are on the failure's own page).
FAILURE_FIELDS = ("queue", "actor", "eventId", "eventType", "paymentId", "error", "attempts", "firstFailedAt",
                  "lastFailedAt", "state", "replayedAt", "replayedBy", "purgedAt", "purgedBy")  # fmt: skip
#: Fields of an inbox event it shows: never the payload.
EVENT_FIELDS = ("type", "created", "objectId", "status", "attempts", "error", "source", "receivedAt", "processedAt",
                "lastAttemptAt")  # fmt: skip
EMAIL_FIELDS = ("dedupeKey", "template", "recipient", "status", "attempts", "lastError", "messageId", "sentAt",
                "failedAt", "createdAt", "updatedAt")  # fmt: skip
#: Each list of the story is capped: a payment has a handful of each; this bounds a pathological one.
MOST = 200


def ensure_story_indexes(db: Database[Doc]) -> None:
    """The lookups a story and a search make that no other index serves."""
    db.payments.create_index([("customerEmail", ASCENDING), ("createdAt", DESCENDING)], name="customer_email_recent")
    db.stripe_events.create_index([("objectId", ASCENDING)], name="object")
    db.job_failures.create_index([("paymentId", ASCENDING)], name="payment", sparse=True)
    db.job_failures.create_index([("eventId", ASCENDING)], name="event", sparse=True)
    db.ops_audit.create_index([("selection.paymentId", ASCENDING)], name="selection_payment", sparse=True)
    db.ops_audit.create_index([("selection.eventId", ASCENDING)], name="selection_event", sparse=True)
    db.ops_audit.create_index([("selection.ids", ASCENDING)], name="selection_ids", sparse=True)


def _only(fields: Sequence[str]) -> dict[str, int]:
    return dict.fromkeys(fields, 1)


class MongoStory:
    def __init__(self, db: Database[Doc]) -> None:
        self.db = db

    def find_payments(self, kind: str, value: str, limit: int) -> list[Doc]:
        if kind == "intent":
            query: dict[str, Any] = {"paymentId": value}
        elif kind == "object_id":
            query = {"$or": [{"_id": ObjectId(value)}, {"customerId": ObjectId(value)}]}
        else:  # emails as the app stored them, or lower-cased
            query = {"customerEmail": {"$in": sorted({value, value.lower()})}}
        return list(self.db.payments.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)]).limit(limit))

    def payment(self, key: str) -> Doc | None:
        if key.startswith("pi_"):
            return self.db.payments.find_one({"paymentId": key})
        return self.db.payments.find_one({"_id": ObjectId(key)})

    def events_of(self, object_ids: Sequence[str]) -> list[Doc]:
        query = {"objectId": {"$in": list(object_ids)}}
        return list(self.db.stripe_events.find(query, _only(EVENT_FIELDS)).sort("receivedAt", ASCENDING).limit(MOST))

    def failures_of(self, intent_id: str, event_ids: Sequence[str]) -> list[Doc]:
        either: list[dict[str, Any]] = [{"eventId": {"$in": list(event_ids)}}]
        if intent_id:
            either.append({"paymentId": intent_id})
        found = self.db.job_failures.find({"$or": either}, _only(FAILURE_FIELDS))
        return list(found.sort("_id", ASCENDING).limit(MOST))

    def emails_of(self, record_id: Any) -> list[Doc]:
        # Every dedupe key of a payment's emails starts with its _id (usecases.notices.notice): a
        # prefix, which the unique index serves.
        query = {"dedupeKey": {"$regex": f"^{re.escape(str(record_id))}:"}}
        return list(self.db.notifications.find(query, _only(EMAIL_FIELDS)).sort("createdAt", ASCENDING).limit(MOST))

    def enrollment_of(self, payment: Mapping[str, Any]) -> Doc | None:
        if payment.get("enrollmentId") is not None:
            found = self.db.enrollments.find_one({"_id": payment["enrollmentId"]})
            if found is not None:
                return found
            if payment.get("activatedAt") is not None:
                return None  # the app removed the enrollment this payment activated
        pair = {"customerId": payment.get("customerId"), "serviceId": payment.get("serviceId")}
        return self.db.enrollments.find_one(pair)

    def audit_of(self, intent_id: str, event_ids: Sequence[str], failure_ids: Sequence[str]) -> list[Doc]:
        either: list[dict[str, Any]] = [{"selection.eventId": {"$in": list(event_ids)}},
                                        {"selection.ids": {"$in": list(failure_ids)}}]  # fmt: skip
        if intent_id:
            either.append({"selection.paymentId": intent_id})
        return list(self.db.ops_audit.find({"$or": either}).sort("at", ASCENDING).limit(MOST))


def _with_id(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A document as JSON, its ``_id`` as ``id``."""
    if doc is None:
        return None
    body = jsonable({k: v for k, v in doc.items() if k != "_id"})
    return {"id": str(doc.get("_id")), **body}


def story_json(story: Mapping[str, Any]) -> dict[str, Any]:
    """The story in the ops API's shape (docs/api.md#ops-api): the payment in the admin view, ids as ``id``."""
    return {
        "payment": payment_json(story["payment"], "admin"),
        "stripe": jsonable(story["stripe"]),
        "stripeError": story["stripeError"],
        "events": [_with_id(e) for e in story["events"]],
        "failures": [_with_id(f) for f in story["failures"]],
        "emails": [_with_id(n) for n in story["emails"]],
        "enrollment": _with_id(story["enrollment"]),
        "audit": [_with_id(a) for a in story["audit"]],
        "timeline": jsonable(story["timeline"]),
        "diagnosis": story["diagnosis"],
    }


def search_json(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [jsonable(dict(row)) for row in rows]
