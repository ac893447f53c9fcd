"""BSON types survive writes, updates and queries: datetimes, ObjectIds, Int64, sub-documents."""

from __future__ import annotations

import datetime
from typing import Any

from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import DESCENDING
from pymongo.database import Database


def test_set_datetime_and_push_subdocument_stay_typed(mongo_db: Database[Any]) -> None:
    """$set of a datetime and $push of a typed sub-document keep datetime, ObjectId and Int64."""
    payments = mongo_db.payments
    payment_id = payments.insert_one({"status": "new", "attempts": []}).inserted_id
    settled_at = datetime.datetime(2024, 5, 17, 10, 30, 15, 123000)
    refund_id = ObjectId()
    payments.update_one(
        {"_id": payment_id},
        {
            "$set": {"settled_at": settled_at, "amount": Int64(2**40)},
            "$push": {"attempts": {"at": settled_at, "refund": refund_id, "cents": Int64(42)}},
        },
    )
    doc = payments.find_one({"_id": payment_id})
    assert doc is not None
    assert doc["settled_at"] == settled_at and type(doc["settled_at"]) is datetime.datetime
    assert type(doc["amount"]) is Int64 and doc["amount"] == 2**40
    attempt = doc["attempts"][0]
    assert attempt == {"at": settled_at, "refund": refund_id, "cents": 42}
    assert type(attempt["cents"]) is Int64 and type(attempt["refund"]) is ObjectId


def test_datetimes_are_queryable_by_range(mongo_db: Database[Any]) -> None:
    """Datetimes set with $set match $gte/$lt ranges, sort correctly, and keep millisecond precision."""
    base = datetime.datetime(2024, 1, 1)
    mongo_db.ticks.insert_many([{"_id": i} for i in range(10)])
    for i in range(10):
        mongo_db.ticks.update_one({"_id": i}, {"$set": {"at": base + datetime.timedelta(hours=i, microseconds=1500)}})
    window = mongo_db.ticks.find(
        {"at": {"$gte": base + datetime.timedelta(hours=3), "$lt": base + datetime.timedelta(hours=6)}}
    )
    assert [d["_id"] for d in window.sort("at", DESCENDING)] == [5, 4, 3]
    first = mongo_db.ticks.find_one({"_id": 0})
    assert first is not None and first["at"] == base + datetime.timedelta(microseconds=1000)  # BSON: ms


def test_aware_datetimes_are_stored_as_utc(mongo_db: Database[Any]) -> None:
    """A timezone-aware datetime is stored as its UTC instant (returned naive, as pymongo does)."""
    paris = datetime.timezone(datetime.timedelta(hours=2))
    mongo_db.ticks.insert_one({"_id": 1, "at": datetime.datetime(2024, 6, 1, 12, 0, tzinfo=paris)})
    doc = mongo_db.ticks.find_one({"at": datetime.datetime(2024, 6, 1, 10, 0)})
    assert doc is not None and doc["_id"] == 1


def test_query_on_objectid_fields_other_than_id(mongo_db: Database[Any]) -> None:
    """Equality and $in queries on ObjectId fields (not _id) find the right documents."""
    customer_a, customer_b = ObjectId(), ObjectId()
    mongo_db.orders.insert_many(
        [{"customer": customer_a, "n": 1}, {"customer": customer_b, "n": 2}, {"customer": customer_a, "n": 3}]
    )
    assert sorted(d["n"] for d in mongo_db.orders.find({"customer": customer_a})) == [1, 3]
    assert mongo_db.orders.count_documents({"customer": {"$in": [customer_b]}}) == 1
    assert mongo_db.orders.count_documents({"customer": str(customer_a)}) == 0


def test_aggregation_on_dates_groups_and_projects(mongo_db: Database[Any]) -> None:
    """$match on a date range, $group with $sum, $sort and $project compute MongoDB's result."""
    day = datetime.datetime(2024, 3, 1)
    rows = [
        {"merchant": "m1", "cents": Int64(100), "at": day},
        {"merchant": "m1", "cents": Int64(250), "at": day + datetime.timedelta(days=1)},
        {"merchant": "m2", "cents": Int64(75), "at": day + datetime.timedelta(days=1)},
        {"merchant": "m2", "cents": Int64(999), "at": day + datetime.timedelta(days=9)},
        {"merchant": "m3", "cents": Int64(5), "at": day - datetime.timedelta(days=1)},
    ]
    mongo_db.charges.insert_many(rows)
    pipeline: list[dict[str, Any]] = [
        {"$match": {"at": {"$gte": day, "$lt": day + datetime.timedelta(days=7)}}},
        {"$group": {"_id": "$merchant", "total": {"$sum": "$cents"}, "count": {"$sum": 1}}},
        {"$sort": {"total": -1}},
        {"$project": {"_id": 0, "merchant": "$_id", "total": 1, "count": 1}},
    ]
    result = list(mongo_db.charges.aggregate(pipeline))
    assert result == [{"total": 350, "count": 2, "merchant": "m1"}, {"total": 75, "count": 1, "merchant": "m2"}]


def test_inc_keeps_64_bit_integers(mongo_db: Database[Any]) -> None:
    """$inc of an Int64 (or by an Int64) yields an Int64, and of int32s an int, as in MongoDB."""
    mongo_db.counters.insert_one({"_id": 1, "long": Int64(5), "int": 5})
    mongo_db.counters.update_one({"_id": 1}, {"$inc": {"long": 1, "int": 1, "by_long": Int64(2)}})
    doc = mongo_db.counters.find_one({"_id": 1})
    assert doc == {"_id": 1, "long": 6, "int": 6, "by_long": 2}
    assert type(doc["long"]) is Int64 and type(doc["by_long"]) is Int64 and type(doc["int"]) is int
