"""The stand-in's accelerated mongomock (``_id`` and unique-key lookups, hashed unique checks)
gives exactly plain mongomock's results, on random operations over awkward values."""

from __future__ import annotations

import random
from typing import Any

import mongomock
import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId

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
