"""Basic behaviour over a real pymongo connection: handshake, CRUD, queries, cursors, commands."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, CursorType, MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent
from pymongo.write_concern import WriteConcern

from .conftest import new_client


def test_handshake_reports_mongodb_7(mongo_client: MongoClient[dict[str, Any]]) -> None:
    """The server introduces itself as a writable MongoDB 7 primary speaking wire version 21."""
    info = mongo_client.server_info()
    assert info["ok"] == 1
    assert info["versionArray"][0] >= 7
    hello = mongo_client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["maxWireVersion"] >= 21
    assert hello["logicalSessionTimeoutMinutes"] > 0
    assert mongo_client.admin.command("ping")["ok"] == 1


def test_crud_round_trip(mongo_db: Database[Any]) -> None:
    """insert/find/update/replace/delete behave as in MongoDB and report matched/modified counts."""
    orders = mongo_db.orders
    inserted = orders.insert_one({"sku": "a", "qty": 1})
    assert orders.find_one({"_id": inserted.inserted_id}) == {"_id": inserted.inserted_id, "sku": "a", "qty": 1}
    orders.insert_many([{"sku": "b", "qty": 2}, {"sku": "c", "qty": 3}])

    result = orders.update_one({"sku": "a"}, {"$inc": {"qty": 5}})
    assert (result.matched_count, result.modified_count) == (1, 1)
    result = orders.update_many({"qty": {"$gte": 2}}, {"$set": {"big": True}})
    assert (result.matched_count, result.modified_count) == (3, 3)
    result = orders.update_one({"sku": "zzz"}, {"$set": {"qty": 0}})
    assert (result.matched_count, result.modified_count, result.upserted_id) == (0, 0, None)
    result = orders.update_one({"sku": "d"}, {"$set": {"qty": 4}}, upsert=True)
    assert result.upserted_id is not None and result.matched_count == 0

    orders.replace_one({"sku": "b"}, {"sku": "b", "qty": 20})
    assert orders.find_one({"sku": "b"}, {"_id": 0}) == {"sku": "b", "qty": 20}

    assert orders.delete_one({"sku": "c"}).deleted_count == 1
    assert orders.delete_many({"qty": {"$gt": 0}}).deleted_count == 3
    assert orders.count_documents({}) == 0


def test_sort_skip_limit_projection(mongo_db: Database[Any]) -> None:
    """find honours sort (compound), skip, limit and inclusion/exclusion projections."""
    items = mongo_db.items
    items.insert_many([{"_id": i, "group": i % 3, "n": i, "secret": "x"} for i in range(10)])
    page = list(items.find({}, {"n": 1}).sort([("group", ASCENDING), ("n", DESCENDING)]).skip(2).limit(3))
    assert page == [{"_id": 3, "n": 3}, {"_id": 0, "n": 0}, {"_id": 7, "n": 7}]
    excluded = items.find_one({"_id": 4}, {"secret": 0, "_id": 0})
    assert excluded == {"group": 1, "n": 4}
    assert [d["_id"] for d in items.find({"n": {"$in": [1, 5, 9]}}).sort("n", DESCENDING)] == [9, 5, 1]


def test_count_and_distinct(mongo_db: Database[Any]) -> None:
    """count_documents (with filter, skip, limit) and distinct return what MongoDB returns."""
    events = mongo_db.events
    events.insert_many([{"kind": k, "n": i} for i, k in enumerate(["a", "b", "a", "c", "a"])])
    assert events.count_documents({}) == 5
    assert events.count_documents({"kind": "a"}) == 3
    assert events.count_documents({"kind": "a"}, skip=1, limit=1) == 1
    assert events.estimated_document_count() == 5
    assert sorted(events.distinct("kind")) == ["a", "b", "c"]
    assert sorted(events.distinct("n", {"kind": "a"})) == [0, 2, 4]


class _GetMoreCounter(CommandListener):
    def __init__(self) -> None:
        self.get_mores = 0

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "getMore":
            self.get_mores += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def test_cursor_spanning_many_batches(mongo_uri: str, mongo_db: Database[Any]) -> None:
    """A 250-document result read with batch_size 50 comes back whole, through getMore calls."""
    mongo_db.many.insert_many([{"_id": i} for i in range(250)])
    counter = _GetMoreCounter()
    client = new_client(mongo_uri, event_listeners=[counter])
    try:
        ids = [d["_id"] for d in client[mongo_db.name].many.find().sort("_id").batch_size(50)]
        assert ids == list(range(250))
        assert counter.get_mores >= 4
        default_batches = list(client[mongo_db.name].many.find())  # first batch 101, then getMore
        assert len(default_batches) == 250
    finally:
        client.close()


def test_exhaust_cursor_returns_everything(mongo_db: Database[Any]) -> None:
    """An exhaust cursor (exhaustAllowed getMores) returns every document."""
    mongo_db.many.insert_many([{"_id": i} for i in range(120)])
    docs = list(mongo_db.many.find(cursor_type=CursorType.EXHAUST, batch_size=25).sort("_id"))
    assert [d["_id"] for d in docs] == list(range(120))


def test_cursor_closed_early_is_killed(mongo_db: Database[Any]) -> None:
    """Abandoning a cursor half-way kills it server-side without disturbing the connection."""
    mongo_db.many.insert_many([{"_id": i} for i in range(30)])
    cursor = mongo_db.many.find().batch_size(5)
    assert next(cursor)["_id"] == 0
    cursor.close()
    assert mongo_db.many.count_documents({}) == 30


def test_unknown_command_fails_with_code_59(mongo_db: Database[Any]) -> None:
    """An unknown command fails with CommandNotFound (59) and the connection stays usable."""
    with pytest.raises(OperationFailure) as failure:
        mongo_db.command("noSuchCmd")
    assert failure.value.code == 59
    assert mongo_db.command("ping")["ok"] == 1


def test_bad_operators_raise_operation_failure(mongo_db: Database[Any]) -> None:
    """Unknown update modifiers and query operators fail with MongoDB's codes (9, 2)."""
    mongo_db.things.insert_one({"_id": 1, "a": 1})
    with pytest.raises(OperationFailure) as failure:
        mongo_db.things.update_one({"_id": 1}, {"$foo": {"a": 2}})
    assert failure.value.code == 9
    with pytest.raises(OperationFailure) as failure:
        mongo_db.things.find_one({"a": {"$bogus": 1}})
    assert failure.value.code == 2
    assert mongo_db.things.find_one({"_id": 1}) == {"_id": 1, "a": 1}


def test_create_index_is_idempotent_and_listed(mongo_db: Database[Any]) -> None:
    """create_index twice with the same definition is a no-op, and list_indexes shows it."""
    assert mongo_db.things.create_index([("a", ASCENDING), ("b", DESCENDING)], unique=True) == "a_1_b_-1"
    assert mongo_db.things.create_index([("a", ASCENDING), ("b", DESCENDING)], unique=True) == "a_1_b_-1"
    indexes = {ix["name"]: ix for ix in mongo_db.things.list_indexes()}
    assert set(indexes) == {"_id_", "a_1_b_-1"}
    assert dict(indexes["a_1_b_-1"]["key"]) == {"a": 1, "b": -1}
    assert indexes["a_1_b_-1"]["unique"] is True
    mongo_db.things.drop_index("a_1_b_-1")
    assert [ix["name"] for ix in mongo_db.things.list_indexes()] == ["_id_"]


def test_collections_and_databases_listed_and_dropped(
    mongo_client: MongoClient[dict[str, Any]], mongo_db: Database[Any]
) -> None:
    """create/list/drop of collections and databases behave as in MongoDB."""
    mongo_db.create_collection("empty")
    mongo_db.full.insert_one({"x": 1})
    assert sorted(mongo_db.list_collection_names()) == ["empty", "full"]
    assert [c["name"] for c in mongo_db.list_collections(filter={"name": "full"})] == ["full"]
    assert mongo_db.name in mongo_client.list_database_names()
    mongo_db.drop_collection("full")
    assert mongo_db.list_collection_names() == ["empty"]
    assert list(mongo_db.nothing_here.list_indexes()) == []
    mongo_client.drop_database(mongo_db.name)
    assert mongo_db.name not in mongo_client.list_database_names()


def test_unacknowledged_writes_are_applied(mongo_db: Database[Any]) -> None:
    """w=0 writes (OP_MSG moreToCome) get no reply yet are applied before later commands."""
    fire_and_forget = mongo_db.get_collection("w0", write_concern=WriteConcern(w=0))
    for i in range(5):
        assert not fire_and_forget.insert_one({"_id": i}).acknowledged
    # Another pooled connection may ask before the server has read them all: poll briefly.
    deadline = time.monotonic() + 5
    while mongo_db.w0.count_documents({}) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mongo_db.w0.count_documents({}) == 5


def test_sessions_are_accepted(mongo_client: MongoClient[dict[str, Any]], mongo_db: Database[Any]) -> None:
    """Commands carrying an explicit session work; the session changes nothing."""
    with mongo_client.start_session() as session:
        mongo_db.c.insert_one({"_id": 1}, session=session)
        assert mongo_db.c.find_one({"_id": 1}, session=session) == {"_id": 1}


@pytest.mark.standin
def test_transactions_are_refused_like_on_a_standalone(
    mongo_client: MongoClient[dict[str, Any]], mongo_db: Database[Any]
) -> None:
    """A transaction fails with IllegalOperation (20), as on a standalone mongod, and writes nothing."""
    with (
        mongo_client.start_session() as session,
        pytest.raises(OperationFailure) as failure,
        session.start_transaction(),
    ):
        mongo_db.c.insert_one({"_id": 1}, session=session)
    assert failure.value.code == 20
    assert mongo_db.c.count_documents({}) == 0
