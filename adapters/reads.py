"""Read side of ``payments`` for the API: access rules in the query, cursor pagination."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc


class BadCursor(ValueError):
    pass


def encode_cursor(doc: Doc) -> str:
    millis = int(doc["createdAt"].timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}:{doc['_id']}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, ObjectId]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, _, oid = raw.partition(":")
        return datetime.fromtimestamp(int(millis) / 1000, UTC), ObjectId(oid)
    except (ValueError, InvalidId, binascii.Error, UnicodeDecodeError):
        raise BadCursor("cursor is not one this API gave out") from None


class MongoPaymentReads:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

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
