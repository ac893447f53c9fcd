"""Unique and compound unique indexes: DuplicateKeyError from every write path, bulk semantics."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError


def test_unique_index_rejects_duplicate_insert(mongo_db: Database[Any]) -> None:
    """insert_one of a duplicate unique key raises DuplicateKeyError naming the key, and stores nothing."""
    mongo_db.users.create_index("email", unique=True)
    mongo_db.users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError) as failure:
        mongo_db.users.insert_one({"email": "a@example.com", "other": 1})
    assert failure.value.code == 11000
    assert failure.value.details is not None
    assert failure.value.details.get("keyValue") == {"email": "a@example.com"}
    assert mongo_db.users.count_documents({}) == 1


def test_duplicate_id_raises(mongo_db: Database[Any]) -> None:
    """Inserting an _id twice raises DuplicateKeyError on the _id index."""
    mongo_db.users.insert_one({"_id": "u1"})
    with pytest.raises(DuplicateKeyError):
        mongo_db.users.insert_one({"_id": "u1"})


def test_compound_unique_index(mongo_db: Database[Any]) -> None:
    """A compound unique index allows equal parts but not an equal combination."""
    mongo_db.lines.create_index([("order", ASCENDING), ("line", ASCENDING)], unique=True)
    mongo_db.lines.insert_many([{"order": 1, "line": 1}, {"order": 1, "line": 2}, {"order": 2, "line": 1}])
    with pytest.raises(DuplicateKeyError) as failure:
        mongo_db.lines.insert_one({"order": 2, "line": 1})
    assert failure.value.details is not None
    assert failure.value.details.get("keyPattern") == {"order": 1, "line": 1}
    assert mongo_db.lines.count_documents({}) == 3


def test_update_into_duplicate_raises_and_leaves_document(mongo_db: Database[Any]) -> None:
    """update_one that would duplicate a unique key raises DuplicateKeyError and changes nothing."""
    mongo_db.users.create_index("email", unique=True)
    mongo_db.users.insert_many([{"_id": 1, "email": "a"}, {"_id": 2, "email": "b"}])
    with pytest.raises(DuplicateKeyError):
        mongo_db.users.update_one({"_id": 2}, {"$set": {"email": "a", "touched": True}})
    assert mongo_db.users.find_one({"_id": 2}) == {"_id": 2, "email": "b"}
    mongo_db.users.update_one({"_id": 2}, {"$set": {"email": "c"}})
    mongo_db.users.insert_one({"_id": 3, "email": "b"})  # the old value is free again


def test_find_one_and_update_into_duplicate_raises(mongo_db: Database[Any]) -> None:
    """find_one_and_update raises DuplicateKeyError both when updating and when upserting a duplicate."""
    mongo_db.users.create_index("email", unique=True)
    mongo_db.users.insert_many([{"_id": 1, "email": "a"}, {"_id": 2, "email": "b"}])
    with pytest.raises(DuplicateKeyError):
        mongo_db.users.find_one_and_update({"_id": 2}, {"$set": {"email": "a"}})
    with pytest.raises(DuplicateKeyError):
        mongo_db.users.find_one_and_update(
            {"_id": 3}, {"$set": {"email": "b"}}, upsert=True, return_document=ReturnDocument.AFTER
        )
    assert mongo_db.users.count_documents({}) == 2


def test_insert_many_ordered_stops_at_first_duplicate(mongo_db: Database[Any]) -> None:
    """Ordered insert_many raises BulkWriteError with writeErrors and stops at the first duplicate."""
    mongo_db.users.create_index("email", unique=True)
    docs = [{"email": "a"}, {"email": "b"}, {"email": "a"}, {"email": "c"}]
    with pytest.raises(BulkWriteError) as failure:
        mongo_db.users.insert_many(docs)
    details = failure.value.details
    assert details["nInserted"] == 2
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(2, 11000)]
    assert sorted(mongo_db.users.distinct("email")) == ["a", "b"]


def test_insert_many_unordered_continues_past_duplicates(mongo_db: Database[Any]) -> None:
    """Unordered insert_many reports every duplicate and inserts all the rest."""
    mongo_db.users.create_index("email", unique=True)
    docs = [{"email": "a"}, {"email": "a"}, {"email": "b"}, {"email": "b"}, {"email": "c"}]
    with pytest.raises(BulkWriteError) as failure:
        mongo_db.users.insert_many(docs, ordered=False)
    details = failure.value.details
    assert details["nInserted"] == 3
    assert sorted(e["index"] for e in details["writeErrors"]) == [1, 3]
    assert sorted(mongo_db.users.distinct("email")) == ["a", "b", "c"]


def test_unique_index_on_larger_collection(mongo_db: Database[Any]) -> None:
    """Unique checks stay right with many documents, deletes and key changes in between."""
    users = mongo_db.users
    users.create_index("n", unique=True)
    users.insert_many([{"_id": i, "n": i} for i in range(2000)])
    users.delete_many({"n": {"$lt": 10}})
    users.insert_one({"_id": "new5", "n": 5})  # freed by the delete
    users.update_one({"_id": 20}, {"$set": {"n": -20}})
    users.insert_one({"_id": "new20", "n": 20})  # freed by the update
    with pytest.raises(DuplicateKeyError):
        users.insert_one({"n": -20})
    with pytest.raises(DuplicateKeyError):
        users.insert_one({"n": 1999.0})  # numerically equal to an int key
    assert users.count_documents({}) == 1992


def test_recreating_partial_unique_index_is_a_no_op(mongo_db: Database[Any]) -> None:
    """create_index again with the same definition succeeds, with many documents outside the
    partial filter sharing a null key; a new partial unique index ignores those too."""
    payments = mongo_db.payments
    partial = {"openKey": {"$type": "string"}}
    payments.create_index("openKey", unique=True, name="open_slot", partialFilterExpression=partial)
    payments.insert_many([{"openKey": None, "n": i} for i in range(5)] + [{"openKey": "c:s"}])
    payments.create_index("openKey", unique=True, name="open_slot", partialFilterExpression=partial)
    payments.create_index("n", unique=True, name="n_partial", partialFilterExpression={"n": {"$gte": 3}})
    with pytest.raises(DuplicateKeyError):
        payments.insert_one({"openKey": "c:s"})
    with pytest.raises(DuplicateKeyError):
        payments.insert_one({"n": 4})
    payments.insert_one({"n": 1})  # outside n_partial's filter
    with pytest.raises(DuplicateKeyError):  # null openKeys fall inside this filter
        payments.create_index([("openKey", -1)], unique=True, name="dup", partialFilterExpression={"n": {"$lt": 2}})
    assert set(payments.index_information()) == {"_id_", "open_slot", "n_partial"}
