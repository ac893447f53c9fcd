"""Conditional find_one_and_update: state machines and upserts, as the workers use them."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database


def test_conditional_transition_happens_once(mongo_db: Database[Any]) -> None:
    """A transition filtered on the current status succeeds once; repeating it returns None."""
    jobs = mongo_db.jobs
    jobs.insert_one({"_id": "j1", "status": "pending", "tries": 0})
    claimed = jobs.find_one_and_update(
        {"_id": "j1", "status": "pending"},
        {"$set": {"status": "running"}, "$inc": {"tries": 1}},
        return_document=ReturnDocument.AFTER,
    )
    assert claimed == {"_id": "j1", "status": "running", "tries": 1}
    again = jobs.find_one_and_update({"_id": "j1", "status": "pending"}, {"$set": {"status": "running"}})
    assert again is None
    before = jobs.find_one_and_update({"_id": "j1", "status": "running"}, {"$set": {"status": "done"}})
    assert before is not None and before["status"] == "running"  # default: the pre-image
    assert jobs.find_one({"_id": "j1"}, {"_id": 0, "status": 1}) == {"status": "done"}


def test_find_one_and_update_sort_and_projection(mongo_db: Database[Any]) -> None:
    """find_one_and_update takes the first document in sort order and projects the result."""
    jobs = mongo_db.jobs
    jobs.insert_many([{"_id": i, "status": "pending", "priority": p} for i, p in enumerate([2, 9, 5])])
    taken = jobs.find_one_and_update(
        {"status": "pending"},
        {"$set": {"status": "running"}},
        sort=[("priority", -1)],
        projection={"priority": 1, "_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    assert taken == {"priority": 9}
    assert jobs.find_one({"_id": 1}, {"status": 1}) == {"_id": 1, "status": "running"}


def test_upsert_with_set_on_insert(mongo_db: Database[Any]) -> None:
    """An upsert applies $setOnInsert only when it inserts; $set applies both times."""
    counters = mongo_db.counters
    first = counters.find_one_and_update(
        {"_id": "evt_1"},
        {"$setOnInsert": {"created": True, "n": 0}, "$set": {"seen": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert first == {"_id": "evt_1", "created": True, "n": 0, "seen": 1}
    counters.update_one({"_id": "evt_1"}, {"$set": {"created": False}})
    second = counters.find_one_and_update(
        {"_id": "evt_1"},
        {"$setOnInsert": {"created": True, "n": 0}, "$set": {"seen": 2}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert second == {"_id": "evt_1", "created": False, "n": 0, "seen": 2}
    absent = counters.find_one_and_update({"_id": "evt_2"}, {"$set": {"seen": 1}}, upsert=True)
    assert absent is None  # upsert with the pre-image: there was none
    result = counters.update_one({"key": "k"}, {"$setOnInsert": {"v": 1}}, upsert=True)
    assert result.upserted_id is not None
    assert counters.find_one({"key": "k"}, {"_id": 0}) == {"key": "k", "v": 1}


def test_find_one_and_delete(mongo_db: Database[Any]) -> None:
    """find_one_and_delete returns the removed document, then None."""
    mongo_db.jobs.insert_one({"_id": 1, "status": "done"})
    assert mongo_db.jobs.find_one_and_delete({"status": "done"}) == {"_id": 1, "status": "done"}
    assert mongo_db.jobs.find_one_and_delete({"status": "done"}) is None
