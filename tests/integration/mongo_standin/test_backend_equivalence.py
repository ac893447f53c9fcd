"""The stand-in's accelerated mongomock (queries served through ``_id`` and index key maps, hashed
unique checks, queued TTL expiry) gives exactly plain mongomock's results, on random operations
over awkward values."""

from __future__ import annotations

import dataclasses
import datetime
import random
from pathlib import Path
from typing import Any

import mongomock
import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId

from devstack.mongo_standin import snapshot
from devstack.mongo_standin.backend import StandinClient

pytestmark = pytest.mark.standin

_OIDS = [ObjectId() for _ in range(2)]
# Values mongomock compares in surprising ways: int/float/Int64/bool equality, NaN, arrays,
# sub-documents, ObjectIds next to their hex strings, null next to missing.
_VALUES: list[Any] = [
    1, 2, 1.0, 2.0, Int64(1), True, False, "1", "a", None, [1, 2], [2], ["a", 1], [],
    {"x": 1}, {"x": 1.0}, _OIDS[0], _OIDS[1], str(_OIDS[0]), [str(_OIDS[1])], float("nan"),
]  # fmt: skip


def _apply(collection: Any, op: int, doc: dict[str, Any], doc_id: int, key: Any, other: Any) -> Any:
    if op == 0:
        return collection.insert_one({**doc, "_id": doc_id}).inserted_id
    if op == 1:
        update = {"$set": doc} if doc else {"$unset": {"u": ""}}
        return collection.update_one({"_id": doc_id}, update).raw_result
    if op == 2:
        return collection.delete_one({"_id": doc_id}).deleted_count
    if op == 3:
        return list(collection.find({"u": key}))
    if op == 4:
        return collection.update_one({"u": key}, {"$set": {"u": other, "c2": other}}).raw_result
    return collection.update_many({"u": {"$exists": True}}, {"$set": {"c1": other}}).raw_result


def _outcome(collection: Any, *args: Any) -> str:
    try:
        result = _apply(collection, *args)
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    if isinstance(result, dict):
        result.pop("connectionId", None)  # differs between two clients, by design
    return repr(result)


def _run(seed: int) -> None:
    rnd = random.Random(seed)
    reference: Any = mongomock.MongoClient().db.c
    standin = StandinClient().collection("db", "c")
    for collection in (reference, standin):
        collection.create_index("u", unique=True)
        collection.create_index([("c1", 1), ("c2", 1)], unique=True)
        collection.create_index("p.q", unique=True)
    for step in range(250):
        doc = {f: rnd.choice(_VALUES) for f in ("u", "c1", "c2") if rnd.random() < 0.6}
        if rnd.random() < 0.3:
            doc["p"] = rnd.choice([{"q": rnd.choice(_VALUES)}, [{"q": 1}], 5, {}])
        args = (rnd.randrange(6), doc, rnd.randrange(30), rnd.choice(_VALUES), rnd.choice(_VALUES))
        expected = _outcome(reference, *args)
        assert _outcome(standin, *args) == expected, f"seed {seed} step {step}: {args}"
        assert repr(list(reference.find())) == repr(list(standin.find())), f"seed {seed} step {step}"


@pytest.mark.parametrize("seed", range(12))
def test_accelerated_backend_matches_mongomock(seed: int) -> None:
    """Random inserts, updates, deletes and finds give identical results and data in both."""
    _run(seed)


# Indexes of every kind the key maps serve: non-unique single, compound and dotted; unique
# compound; unique partial ($type and $exists filters). (No sparse unique index: mongomock's own
# check of one raises TypeError on an array value, which the stand-in doesn't mimic.)
_INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("k", 1)], {}),
    ([("a", 1), ("b", -1)], {}),
    ([("a", 1), ("p.q", 1)], {}),
    ([("cid", 1), ("sid", 1)], {"unique": True}),
    ([("pid", 1)], {"unique": True, "partialFilterExpression": {"pid": {"$type": "string"}}}),
    ([("ok", 1)], {"unique": True, "partialFilterExpression": {"ok": {"$exists": True}, "st": "open"}}),
    ([("s", 1)], {}),
]
_FIELDS = ["k", "a", "b", "cid", "sid", "pid", "ok", "st", "s", "x"]
# Few distinct values, so that equal keys, in every type that compares equal, are common.
_POOL: list[Any] = [*_VALUES, "s1", "s2", "s3", 3, 3.0, _OIDS[0], _OIDS[1], "open", "closed"]


def _value(rnd: random.Random) -> Any:
    return rnd.choice(_POOL)


def _condition(rnd: random.Random) -> Any:
    """An equality in one of the forms the lookup understands (or, sometimes, one it doesn't)."""
    roll = rnd.random()
    if roll < 0.55:
        return _value(rnd)
    if roll < 0.7:
        return {"$eq": _value(rnd)}
    if roll < 0.85:
        return {"$in": [_value(rnd) for _ in range(rnd.randrange(4))]}
    if roll < 0.92:
        return {"$in": [_value(rnd)], "$ne": _value(rnd)}
    return {"$gte": _value(rnd)}


def _query(rnd: random.Random, depth: int = 0) -> dict[str, Any]:
    """Equalities on all (or a prefix) of an index's fields, plus other conditions; or an $or of those."""
    if depth == 0 and rnd.random() < 0.12:
        return {"$or": [_query(rnd, 1) for _ in range(rnd.randint(1, 3))]}
    fields = [field for field, _ in rnd.choice(_INDEXES)[0]]
    fields = fields[: rnd.randint(1, len(fields))]
    query: dict[str, Any] = {field: _condition(rnd) for field in fields}
    if rnd.random() < 0.4:
        extra = rnd.choice(_FIELDS)
        query.setdefault(extra, rnd.choice([_value(rnd), {"$ne": _value(rnd)}, {"$exists": rnd.random() < 0.5}]))
    if rnd.random() < 0.15:
        query = {"$and": [{f: c} for f, c in query.items()]}
    if rnd.random() < 0.1:
        query["_id"] = rnd.choice([rnd.randrange(30), {"$in": [rnd.randrange(30), rnd.randrange(30)]}])
    return query


def _doc(rnd: random.Random) -> dict[str, Any]:
    doc = {field: _value(rnd) for field in _FIELDS if rnd.random() < 0.5}
    if rnd.random() < 0.3:
        doc["p"] = rnd.choice([{"q": _value(rnd)}, [{"q": 1}], 5, {}])
    return doc


def _indexed_op(collection: Any, rnd: random.Random) -> Any:
    op = rnd.randrange(16)
    doc_id = rnd.randrange(30)
    new_id = {"_id": 100 + rnd.randrange(30)}  # for upserts: the same on both sides
    if op == 0:
        return collection.insert_one({**_doc(rnd), "_id": doc_id}).inserted_id
    if op == 1:
        changes = {field: _value(rnd) for field in rnd.sample(_FIELDS, rnd.randint(1, 3))}
        return collection.update_one({"_id": doc_id}, {"$set": changes}).raw_result
    if op == 2:
        return collection.update_one({"_id": doc_id}, {"$unset": {rnd.choice(_FIELDS): ""}}).raw_result
    if op == 3:
        return collection.replace_one({"_id": doc_id}, _doc(rnd)).raw_result
    if op == 4:
        return collection.delete_one(_query(rnd)).deleted_count
    if op == 5:
        return collection.delete_many(_query(rnd)).deleted_count
    if op == 6:
        update = {"$set": {rnd.choice(_FIELDS): _value(rnd)}}
        return collection.update_many(_query(rnd), update).raw_result
    if op == 7:
        update = {"$set": {rnd.choice(_FIELDS): _value(rnd)}, "$inc": {"n": 1}, "$setOnInsert": new_id}
        return collection.update_one(_query(rnd), update, upsert=rnd.random() < 0.5).raw_result
    if op == 8:
        update = {"$set": {rnd.choice(_FIELDS): _value(rnd)}, "$setOnInsert": new_id}
        return collection.find_one_and_update(_query(rnd), update, upsert=rnd.random() < 0.3)
    if op == 9:
        return collection.find_one_and_delete(_query(rnd))
    if op == 10:
        sort = rnd.choice([None, [("x", 1)], [("b", -1), ("k", 1)]])
        return list(collection.find(_query(rnd), sort=sort, projection=rnd.choice([None, {"k": 1, "a": 1}])))
    if op == 11:
        return collection.count_documents(_query(rnd))
    if op == 12:
        pipeline = [{"$match": _query(rnd)}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]
        return list(collection.aggregate(pipeline))
    if op == 13:
        return list(collection.aggregate([{"$match": _query(rnd)}, {"$project": {"k": 1, "x": 1}}]))
    if op == 14:
        # distinct's order is a set's (NaN hashes by identity; a snapshot makes new NaN objects).
        return sorted(collection.distinct(rnd.choice(_FIELDS), _query(rnd)), key=repr)
    return collection.update_many({"_id": {"$lt": doc_id}}, {"$set": {rnd.choice(_FIELDS): _value(rnd)}}).raw_result


def _indexed_outcome(collection: Any, seed: int, step: int) -> str:
    try:
        result = _indexed_op(collection, random.Random(f"{seed}-{step}"))
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    if isinstance(result, dict):
        result.pop("connectionId", None)  # differs between two clients, by design
    if isinstance(result, list):
        return repr([_id_first(doc) for doc in result])
    return repr(_id_first(result))


def _id_first(doc: Any) -> Any:
    # A snapshot (BSON) puts _id first in a document, as MongoDB does, where mongomock may not.
    return {"_id": doc["_id"], **doc} if isinstance(doc, dict) and "_id" in doc else doc


def _data(collection: Any) -> str:
    return repr([_id_first(doc) for doc in collection.find()])


def _create_indexes(collection: Any) -> None:
    for keys, options in _INDEXES:
        collection.create_index(keys, **options)


@pytest.mark.parametrize("seed", range(12))
def test_index_served_queries_match_mongomock(seed: int, tmp_path: Path) -> None:
    """Queries by equality on non-unique, compound, dotted, partial and sparse indexes, among
    inserts, updates and upserts changing indexed fields, replaces, deletes, index and collection
    drops and snapshot reloads, give exactly plain mongomock's results and data -- and most of them are
    served through the key maps, not scans."""
    reference: Any = mongomock.MongoClient().db.c
    client = StandinClient()
    standin: Any = client.collection("db", "c")
    for collection in (reference, standin):
        _create_indexes(collection)
    indexed = scans = 0
    for step in range(300):
        if step % 100 == 99:  # index drops and re-creations; a snapshot round trip
            name = next(iter(reference.index_information().keys() - {"_id_"}), None)
            for collection in (reference, standin):
                if name is not None:
                    collection.drop_index(name)
            path = tmp_path / f"state-{step}.bson"
            snapshot.write_atomic(path, snapshot.dump(client))
            client = snapshot.load(path)
            standin = client.collection("db", "c")
            # The reference reloads too: mongomock matches NaN by identity, and loading makes new NaNs.
            reference = mongomock.MongoClient(_store=snapshot.load(path).store).db.c
            outcomes = []
            for collection in (reference, standin):
                try:
                    _create_indexes(collection)
                    outcomes.append("ok")
                except Exception as exc:
                    outcomes.append(type(exc).__name__)
            assert outcomes[0] == outcomes[1], f"seed {seed} step {step}"
        if step == 150:  # a dropped collection starts afresh
            for collection in (reference, standin):
                collection.drop()
                _create_indexes(collection)
        expected = _indexed_outcome(reference, seed, step)
        before = dataclasses.replace(client.query_stats)
        assert _indexed_outcome(standin, seed, step) == expected, f"seed {seed} step {step}"
        indexed += client.query_stats.indexed_queries - before.indexed_queries
        scans += client.query_stats.full_scans - before.full_scans
        assert _data(reference) == _data(standin), f"seed {seed} step {step}"
    assert indexed > scans, (indexed, scans)  # unhashable values and $gte make the rest scan


_START = datetime.datetime(2024, 1, 1)
_DATES: list[Any] = [
    *(_START + datetime.timedelta(seconds=s) for s in (0, 5, 9, 10, 20, 40)),
    [_START + datetime.timedelta(seconds=30), _START],
    [],
    None,
    "2024-01-01",
    0,
]


def _ttl_op(collection: Any, rnd: random.Random) -> Any:
    op = rnd.randrange(7)
    doc_id = rnd.randrange(20)
    if op == 0:
        return collection.insert_one({"_id": doc_id, "at": rnd.choice(_DATES), "k": rnd.randrange(3)}).inserted_id
    if op == 1:
        return collection.update_one({"_id": doc_id}, {"$set": {"at": rnd.choice(_DATES)}}).raw_result
    if op == 2:
        return collection.update_many({"k": rnd.randrange(3)}, {"$unset": {"at": ""}}).raw_result
    if op == 3:
        return collection.delete_one({"_id": doc_id}).deleted_count
    if op == 4:
        return list(collection.find({"k": rnd.randrange(3)}))
    if op == 5:
        return collection.count_documents({})
    return collection.find_one({"_id": doc_id})


def _ttl_outcome(collection: Any, seed: int, step: int) -> str:
    try:
        result = _ttl_op(collection, random.Random(f"{seed}-{step}"))
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    if isinstance(result, dict):
        result.pop("connectionId", None)
    return repr(result)


@pytest.mark.parametrize("seed", range(6))
def test_ttl_expiry_matches_mongomock(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """TTL indexes expire the same documents at the same moments as plain mongomock's scans."""
    clock = [_START]
    monkeypatch.setattr(mongomock, "utcnow", lambda: clock[0])
    reference: Any = mongomock.MongoClient().db.c
    standin: Any = StandinClient().collection("db", "c")
    for collection in (reference, standin):
        collection.create_index("k")
        collection.create_index("at", expireAfterSeconds=30)
    rnd = random.Random(seed)
    for step in range(300):
        if rnd.random() < 0.1:
            clock[0] += datetime.timedelta(seconds=rnd.choice([1, 5, 10]))
        if step == 150:  # a re-created TTL index, with another delay
            for collection in (reference, standin):
                collection.drop_index("at_1")
                collection.create_index("at", expireAfterSeconds=45)
        expected = _ttl_outcome(reference, seed, step)
        assert _ttl_outcome(standin, seed, step) == expected, f"seed {seed} step {step}"
        assert _data(reference) == _data(standin), f"seed {seed} step {step}"
