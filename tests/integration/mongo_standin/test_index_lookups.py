"""Queries by equality on an index's fields read only the documents filed under those values.

These run the stand-in's command engine in-process, to read its ``query_stats`` counters:
``full_scans`` must not move, and each narrowed query must examine just the documents it needs.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from bson.objectid import ObjectId

from devstack.mongo_standin.backend import QueryStats
from devstack.mongo_standin.commands import Engine

pytestmark = pytest.mark.standin

CUSTOMERS = [ObjectId() for _ in range(5000)]
SERVICES = [ObjectId() for _ in range(4)]
OPEN = ["pending", "processing"]


def _ok(engine: Engine, cmd: dict[str, Any]) -> dict[str, Any]:
    reply = engine.execute("db", cmd)
    assert reply["ok"] == 1.0, reply
    assert "writeErrors" not in reply, reply
    return reply


def _insert(engine: Engine, collection: str, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), 2000):
        _ok(engine, {"insert": collection, "documents": docs[start : start + 2000]})


def _since(engine: Engine, before: QueryStats) -> QueryStats:
    now = engine.client.query_stats
    return QueryStats(*(getattr(now, f.name) - getattr(before, f.name) for f in dataclasses.fields(QueryStats)))


def _snapshot(engine: Engine) -> QueryStats:
    return dataclasses.replace(engine.client.query_stats)


def test_compound_unique_equality_reads_one_document_of_20000() -> None:
    """findAndModify by (customerId, serviceId) plus a $nin condition: one candidate, no scan."""
    engine = Engine()
    index = {"key": {"customerId": 1, "serviceId": 1}, "name": "customer_service", "unique": True}
    _ok(engine, {"createIndexes": "enrollments", "indexes": [index]})
    docs = [{"customerId": c, "serviceId": s, "status": "active"} for c in CUSTOMERS for s in SERVICES]
    _insert(engine, "enrollments", docs)
    assert len(docs) == 20_000
    before = _snapshot(engine)
    for i in range(200):
        customer, service = CUSTOMERS[i * 7], SERVICES[i % 4]
        query = {"customerId": customer, "serviceId": service, "status": {"$nin": ["cancelled"]}}
        cmd = {"findAndModify": "enrollments", "query": query, "update": {"$inc": {"n": 1}}, "new": True}
        value = _ok(engine, cmd)["value"]
        assert (value["customerId"], value["serviceId"], value["n"]) == (customer, service, 1)
    used = _since(engine, before)
    assert used.full_scans == 0
    assert used.indexed_queries >= 200
    assert used.candidate_documents == used.indexed_queries  # one document each
    assert used.unique_check_scans == 0
    # A miss on the extra condition reads the one candidate and finds nothing; so does a new pair.
    before = _snapshot(engine)
    miss = {"customerId": CUSTOMERS[0], "serviceId": SERVICES[0], "status": "cancelled"}
    assert _ok(engine, {"find": "enrollments", "filter": miss})["cursor"]["firstBatch"] == []
    new = {"customerId": ObjectId(), "serviceId": SERVICES[0]}
    assert _ok(engine, {"count": "enrollments", "query": new})["n"] == 0
    used = _since(engine, before)
    assert (used.full_scans, used.indexed_queries, used.candidate_documents) == (0, 2, 1)


def _payments(count: int) -> list[dict[str, Any]]:
    start = datetime.datetime(2024, 1, 1)
    return [
        {
            "_id": i,
            "paymentId": f"pi_{i}",
            "customerId": CUSTOMERS[i % 50],
            "serviceId": SERVICES[i % 4],
            "status": "succeeded",
            "openKey": None,  # closed payments free their slot
            "createdAt": start + datetime.timedelta(minutes=i),
        }
        for i in range(count)
    ]


def _payment_engine(count: int) -> Engine:
    engine = Engine()
    partial = {"partialFilterExpression": {"paymentId": {"$type": "string"}}}
    indexes = [
        {"key": {"paymentId": 1}, "name": "paymentId_unique", "unique": True, **partial},
        {
            "key": {"openKey": 1},
            "name": "open_slot_unique",
            "unique": True,
            "partialFilterExpression": {"openKey": {"$type": "string"}},
        },
        {"key": {"customerId": 1, "createdAt": -1}, "name": "customer_recent"},
    ]
    _ok(engine, {"createIndexes": "payments", "indexes": indexes})
    _insert(engine, "payments", _payments(count))
    return engine


def test_payment_lookups_by_partial_unique_and_non_unique_indexes() -> None:
    """paymentId and openKey (unique, partial) lookups read one document; a customer's payments,
    sorted, read that customer's only; writes of documents outside a partial index check nothing."""
    engine = _payment_engine(6000)
    _ok(engine, {"insert": "payments", "documents": [{"_id": "open", "paymentId": "pi_open", "openKey": "c:s"}]})
    _ok(engine, {"update": "payments", "updates": [{"q": {"_id": "open"}, "u": {"$set": {"status": "pending"}}}]})
    before = _snapshot(engine)
    found = _ok(engine, {"find": "payments", "filter": {"paymentId": "pi_4321"}, "limit": 1, "singleBatch": True})
    assert [doc["_id"] for doc in found["cursor"]["firstBatch"]] == [4321]
    found = _ok(engine, {"find": "payments", "filter": {"openKey": "c:s", "status": {"$in": OPEN}}, "limit": 1})
    assert [doc["_id"] for doc in found["cursor"]["firstBatch"]] == ["open"]
    used = _since(engine, before)
    assert (used.full_scans, used.indexed_queries, used.candidate_documents) == (0, 2, 2)

    # The customer_recent index serves its prefix: one customer's 120 payments, newest first.
    before = _snapshot(engine)
    cmd = {"find": "payments", "filter": {"customerId": CUSTOMERS[7]}, "sort": {"createdAt": -1}, "batchSize": 500}
    batch = _ok(engine, cmd)["cursor"]["firstBatch"]
    assert [doc["_id"] for doc in batch] == list(range(5957, -1, -50))
    counted = engine.execute("db", {"count": "payments", "query": {"customerId": {"$in": CUSTOMERS[:3]}}})
    assert counted["n"] == 360
    pipeline = [{"$match": {"customerId": {"$in": CUSTOMERS[:2]}}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]
    grouped = _ok(engine, {"aggregate": "payments", "pipeline": pipeline, "cursor": {}})
    assert [dict(doc) for doc in grouped["cursor"]["firstBatch"]] == [{"_id": 1, "n": 240}]
    used = _since(engine, before)
    assert (used.full_scans, used.indexed_queries, used.candidate_documents) == (0, 3, 120 + 360 + 240)

    # Closing payments (openKey: null, outside the partial index) checks no other document.
    before = _snapshot(engine)
    closing = {"q": {"_id": {"$in": [1, 2, 3]}}, "u": {"$set": {"status": "refunded", "openKey": None}}, "multi": True}
    assert _ok(engine, {"update": "payments", "updates": [closing]})["nModified"] == 3
    _ok(engine, {"insert": "payments", "documents": [{"paymentId": None, "openKey": None} for _ in range(50)]})
    used = _since(engine, before)
    assert used.full_scans == 0
    assert used.unique_check_scans == 0
    assert used.unique_check_candidates == 3  # each closed payment, under its own paymentId


def test_index_maps_follow_changes_of_indexed_fields() -> None:
    """After updates of indexed fields, upserts, deletes, a dropped and re-created index and a
    dropped collection, the lookups still find exactly the documents a scan would."""
    engine = _payment_engine(300)

    def ids(query: dict[str, Any]) -> list[Any]:
        cursor = _ok(engine, {"find": "payments", "filter": query, "batchSize": 1000})["cursor"]
        return [doc["_id"] for doc in cursor["firstBatch"]]

    moves = [{"q": {"_id": i}, "u": {"$set": {"customerId": CUSTOMERS[99], "paymentId": f"moved_{i}"}}} for i in (5, 6)]
    _ok(engine, {"update": "payments", "updates": moves})
    assert ids({"customerId": CUSTOMERS[99]}) == [5, 6]
    assert ids({"customerId": CUSTOMERS[5]}) == list(range(55, 300, 50))
    assert ids({"paymentId": "pi_5"}) == [] and ids({"paymentId": "moved_6"}) == [6]
    upsert = {"q": {"customerId": CUSTOMERS[99], "paymentId": "new"}, "u": {"$set": {"n": 1}}, "upsert": True}
    upserted = _ok(engine, {"update": "payments", "updates": [upsert]})["upserted"][0]["_id"]
    assert ids({"customerId": CUSTOMERS[99]}) == [5, 6, upserted]
    _ok(engine, {"delete": "payments", "deletes": [{"q": {"customerId": CUSTOMERS[99], "_id": 5}, "limit": 1}]})
    _ok(engine, {"insert": "payments", "documents": [{"_id": 5, "customerId": CUSTOMERS[99]}]})
    assert ids({"customerId": CUSTOMERS[99]}) == [6, upserted, 5]  # a re-inserted _id comes last
    replacement = {"q": {"_id": 6}, "u": {"customerId": CUSTOMERS[48]}}
    _ok(engine, {"update": "payments", "updates": [replacement]})
    assert ids({"customerId": CUSTOMERS[99]}) == [upserted, 5]
    assert ids({"customerId": {"$eq": CUSTOMERS[48]}, "_id": {"$gt": 0}}) == [6, *range(48, 300, 50)]

    _ok(engine, {"dropIndexes": "payments", "index": "customer_recent"})
    before = _snapshot(engine)
    assert ids({"customerId": CUSTOMERS[99]}) == [upserted, 5]
    assert _since(engine, before).full_scans == 1  # no index, no map: a scan
    _ok(engine, {"insert": "payments", "documents": [{"_id": "late", "customerId": CUSTOMERS[99]}]})
    _ok(engine, {"createIndexes": "payments", "indexes": [{"key": {"customerId": 1}, "name": "customer"}]})
    before = _snapshot(engine)
    assert ids({"customerId": CUSTOMERS[99]}) == [upserted, 5, "late"]
    assert _since(engine, before).full_scans == 0

    _ok(engine, {"drop": "payments"})
    _ok(engine, {"createIndexes": "payments", "indexes": [{"key": {"customerId": 1}, "name": "customer"}]})
    _ok(engine, {"insert": "payments", "documents": [{"_id": 1, "customerId": CUSTOMERS[99]}]})
    assert ids({"customerId": CUSTOMERS[99]}) == [1]


def test_or_of_indexed_branches_reads_their_union() -> None:
    """The outbox sweep's {$or: [{status: pending, ...}, {status: sending, ...}]} reads only the
    documents of those two statuses, in natural order; an $or with a bare branch scans."""
    engine = Engine()
    index = {"key": {"status": 1, "updatedAt": 1}, "name": "status_updated"}
    _ok(engine, {"createIndexes": "notifications", "indexes": [index]})
    start = datetime.datetime(2024, 1, 1)
    statuses = ["sent"] * 8 + ["pending", "sending"]
    docs = [{"_id": i, "status": statuses[i % 10], "updatedAt": start, "leaseUntil": start} for i in range(5000)]
    _insert(engine, "notifications", docs)
    sweep = {
        "$or": [
            {"status": "pending", "updatedAt": {"$lte": start}},
            {"status": "sending", "leaseUntil": {"$lte": start}},
        ]
    }
    before = _snapshot(engine)
    cursor = _ok(engine, {"find": "notifications", "filter": sweep, "batchSize": 5000})["cursor"]
    assert [doc["_id"] for doc in cursor["firstBatch"]] == [i for i in range(5000) if i % 10 >= 8]
    used = _since(engine, before)
    assert (used.full_scans, used.indexed_queries, used.candidate_documents) == (0, 1, 1000)
    before = _snapshot(engine)
    loose = {"$or": [{"status": "pending"}, {"leaseUntil": {"$gt": start}}]}
    assert _ok(engine, {"count": "notifications", "query": loose})["n"] == 500
    assert _since(engine, before).full_scans == 1
