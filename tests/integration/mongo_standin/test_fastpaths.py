"""``fastpaths`` gives what mongomock's own helpers, update and insert give: the same values, of the
same types, on the values and the operations the payment worker sends (tz-aware and sub-millisecond
datetimes, upserts with $setOnInsert, $inc, $push of sub-documents, projections). (Not $inc on a
long: there the stand-in keeps the long, by design, where mongomock makes it an int.)"""

from __future__ import annotations

import copy
import datetime
import random
from collections import OrderedDict
from typing import Any

import mongomock
import pytest
from bson import Binary, Code, Decimal128, Int64, ObjectId, Regex, Timestamp
from mongomock import collection as mongomock_collection
from mongomock import helpers

from devstack.mongo_standin import fastpaths, lookup
from devstack.mongo_standin.backend import StandinClient

pytestmark = pytest.mark.standin

_UTC = datetime.UTC
_PLUS2 = datetime.timezone(datetime.timedelta(hours=2))
_SCALARS: list[Any] = [
    None, True, 0, 7, 2.5, float("nan"), Int64(9), "s", b"b", ObjectId(), Decimal128("1.5"), Binary(b"x", 4),
    Timestamp(5, 1), Regex("^a"), Code("f()", {"x": 1}),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6789), datetime.datetime(2024, 1, 2, 3, 4, 5, 6000),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6789, tzinfo=_UTC), datetime.datetime(2024, 1, 2, 3, 4, tzinfo=_PLUS2),
]  # fmt: skip


def _shape(value: Any) -> Any:
    """The value with each part's exact type beside it (``==`` alone takes 1 for True, dict for OrderedDict)."""
    if isinstance(value, dict):
        return (type(value).__name__, [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_shape(v) for v in value])
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


def _nested(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth > 2 or roll < 0.5:
        return rnd.choice(_SCALARS)
    items = [(f"f{i}", _nested(rnd, depth + 1)) for i in range(rnd.randrange(4))]
    if roll < 0.65:
        return dict(items)
    if roll < 0.75:
        return OrderedDict(items)
    if roll < 0.9:
        return [value for _, value in items]
    return tuple(value for _, value in items)


def _mutables(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(m for v in value.values() for m in _mutables(v))]
    if isinstance(value, list):
        return [value, *(m for v in value for m in _mutables(v))]
    return []


@pytest.mark.parametrize("seed", range(300))
def test_helpers_equal_mongomocks(seed: int) -> None:
    value = _nested(random.Random(seed))
    assert _shape(fastpaths.patched(value)) == _shape(helpers.patch_datetime_awareness_in_document(value))
    assert _shape(fastpaths.copied(value)) == _shape(mongomock_collection._copy_field(value, dict))
    copied = fastpaths.deep_copy(value)
    assert _shape(copied) == _shape(copy.deepcopy(value))
    assert not {id(m) for m in _mutables(copied)} & {id(m) for m in _mutables(value)}, "shares a container"


_SET_VALUES: list[Any] = [
    *_SCALARS, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, Int64(2**63 - 1), "é", "\ud800", "a\x00b",
    {"a": [1]}, [1, (2,)], (1, [2]), object(), {"\x00": 1}, 1j,
]  # fmt: skip


@pytest.mark.parametrize("field", ["f", "$f", "f\x00", "1"])
@pytest.mark.parametrize("index", range(len(_SET_VALUES)))
def test_set_updater_equals_mongomocks(field: str, index: int) -> None:
    """The same document, or the same exception, for values bson can or can't encode."""
    outcomes = []
    for updater in (mongomock_collection._set_updater, fastpaths.set_updater):
        target: dict[str, Any] = {"x": 1}
        try:
            updater(target, field, _SET_VALUES[index])
            outcomes.append(_shape(target))
        except Exception as exc:
            outcomes.append(f"raised {type(exc).__name__}: {exc}")
    assert outcomes[1] == outcomes[0]


_IDS: list[Any] = [
    1, 1.0, True, Int64(1), "1", "a", ObjectId("0123456789ab0123456789ab"), "0123456789ab0123456789ab",
    datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 1, tzinfo=_UTC), None, {"a": 1}, [1],
]  # fmt: skip


@pytest.mark.parametrize("queried", range(len(_IDS)))
def test_a_query_on_id_alone_is_matched_as_mongomock_would(queried: int) -> None:
    """Where ``lookup.is_by_id_of`` spares the matcher, the matcher would have said the same."""
    for stored in _IDS:
        query, doc = {"_id": _IDS[queried]}, {"_id": stored, "x": 1}
        if lookup.is_by_id_of(query, doc):
            assert mongomock.filtering.filter_applies(query, doc)
    assert lookup.is_by_id_of({"_id": _IDS[queried]}, {"_id": _IDS[queried]}) == (type(_IDS[queried]) in (
        int, Int64, str, ObjectId, datetime.datetime))  # fmt: skip


def _op(collection: Any, rnd: random.Random, step: int) -> Any:
    at = datetime.datetime(2024, 5, 1, 12, 0, step % 60, rnd.randrange(10**6), tzinfo=rnd.choice([_UTC, _PLUS2]))
    key = {"k": rnd.randrange(6)}
    doc_id = rnd.randrange(8)
    op = rnd.randrange(8)
    if op == 0:
        doc = {"_id": doc_id, **key, "n": rnd.randrange(3), "at": at, "h": [], "sub": {"a": 1}}
        return collection.insert_one(doc).inserted_id
    if op == 1:
        update = {"$set": {"at": at, "sub.b": [1, {"c": at}]}, "$inc": {"n": rnd.choice([1, 0.5])}}
        return collection.update_one({"_id": doc_id}, update, upsert=rnd.random() < 0.5).raw_result
    if op == 2:
        insert = {"_id": 100 + step, "created": at, "o": {"x": (1, 2)}}  # the same _id on both sides
        update = {"$set": {"s": rnd.choice(["a", "b"])}, "$setOnInsert": insert}
        return collection.update_one({**key, "s": {"$ne": "z"}}, update, upsert=True).raw_result
    if op == 3:
        update = {"$push": {"h": {"at": at, "s": "x"}}, "$min": {"first": at}, "$max": {"last": at}}
        return collection.find_one_and_update({"_id": doc_id}, update, return_document=rnd.random() < 0.5)
    if op == 4:
        update = {"$set": {"s": "q", "m": {"deep": {"er": at}}}, "$unset": {"sub": ""}}
        return collection.update_many({"k": {"$in": [1, 2, 3]}}, update).raw_result
    if op == 5:
        return collection.find_one(key, rnd.choice([None, {"n": 1}, {"h": 0}]), sort=[("_id", -1)])
    if op == 6:
        return list(collection.find({"at": {"$lte": at}}, sort=[("at", 1)]))
    return collection.update_one({"_id": doc_id}, {"$set": {"_id": 99}}).raw_result  # altering _id fails


@pytest.mark.parametrize("seed", range(10))
def test_updates_and_reads_equal_mongomocks(seed: int) -> None:
    reference: Any = mongomock.MongoClient().db.c
    standin = StandinClient().collection("db", "c")
    for collection in (reference, standin):
        collection.create_index("k", unique=True, partialFilterExpression={"s": {"$exists": True}})
    for step in range(200):
        outcomes = []
        for collection in (reference, standin):
            try:
                result = _op(collection, random.Random(f"{seed}-{step}"), step)
            except Exception as exc:
                result = f"raised {type(exc).__name__}"  # (the stand-in's messages say more, by design)
            if isinstance(result, dict):
                result.pop("connectionId", None)
            outcomes.append(_shape(result))
        assert outcomes[1] == outcomes[0], f"seed {seed} step {step}"
        stored = [_shape(list(c._store._documents.values())) for c in (reference, standin)]
        assert stored[1] == stored[0], f"seed {seed} step {step}"
