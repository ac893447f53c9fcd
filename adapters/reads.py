"""Read side for the API: ``payments`` with access rules in the query and cursor pagination; ``users`` by id."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc
from domain.refunds import ABANDONED


class BadCursor(ValueError):
    pass


def encode_cursor(doc: Doc) -> str:
    millis = int(doc["createdAt"].timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}:{doc['_id']}".encode()).decode().rstrip("=")


#: Largest cursor time: the last millisecond of year 9999, the end of ``datetime``'s range.
MAX_MILLIS = 253_402_300_799_999
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"([0-9]{1,15}):([0-9a-f]{24})")


def decode_cursor(cursor: str) -> tuple[datetime, ObjectId]:
    """The (createdAt, _id) a cursor of ``encode_cursor`` names; ``BadCursor`` for anything else.

    Millis are ASCII digits within ``datetime``'s range, so no input overflows it.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise BadCursor("cursor is not one this API gave out") from None
    match = _CURSOR.fullmatch(raw)
    if match is None or int(match.group(1)) > MAX_MILLIS:
        raise BadCursor("cursor is not one this API gave out")
    return EPOCH + timedelta(milliseconds=int(match.group(1))), ObjectId(match.group(2))


class MongoPaymentReads:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

    def under_review(self, limit: int = 100) -> list[Doc]:
        """Payments a person must look at, oldest flag first (the review queue)."""
        query = {"reviewRequired": {"$type": "object"}}
        return list(self.collection.find(query).sort("reviewRequired.at", 1).limit(limit))

    def given_up_refunds(self, limit: int = 50) -> list[Doc]:
        """Refund requests no run could carry out in time, latest first: each a person should look at.

        One row per request (``paymentId``, ``currency`` and the entry's fields); the query uses the
        ``refund_status`` index.
        """
        mine = {"status": "failed", "failureReason": ABANDONED}
        docs = self.collection.find({"refunds": {"$elemMatch": mine}}, {"paymentId": 1, "currency": 1, "refunds": 1})
        rows = [
            {"paymentId": doc["paymentId"], "currency": doc.get("currency"), **entry}
            for doc in docs.limit(limit)
            for entry in doc.get("refunds") or ()
            if all(entry.get(key) == value for key, value in mine.items())
        ]
        return sorted(rows, key=lambda row: row.get("updatedAt") or EPOCH, reverse=True)[:limit]

    def visible(self, intent_id: str, caller_id: ObjectId, admin: bool) -> Doc | None:
        """The payment if the caller may see it: its customer, its specialist, or an admin."""
        query: dict[str, Any] = {"paymentId": intent_id}
        if not admin:
            query["$or"] = [{"customerId": caller_id}, {"specialistId": caller_id}]
        return self.collection.find_one(query)

    def history(
        self, customer_id: ObjectId, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        """The customer's payments, newest first, ``limit`` at a time."""
        query: dict[str, Any] = {"customerId": customer_id}
        if status:
            query["status"] = status
        if cursor:
            at, oid = decode_cursor(cursor)
            query["$or"] = [{"createdAt": {"$lt": at}}, {"createdAt": at, "_id": {"$lt": oid}}]
        docs = list(self.collection.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, encode_cursor(docs[-1]) if more and docs else None


class MongoUsers:
    """The MERN app's ``users``, read only: does this user exist, and with which role."""

    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.users

    def find(self, user_id: ObjectId) -> Doc | None:
        """The user's document with only its ``role`` (and ``_id``), or None when there is no such user."""
        return self.collection.find_one({"_id": user_id}, {"role": 1})
