"""``matcher.compile_filter`` answers as mongomock's ``filter_applies`` does, on random simple
filters and documents (missing fields, wrong types, arrays and sub-documents among them)."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from bson import Int64, ObjectId
from mongomock.filtering import filter_applies

from devstack.mongo_standin import matcher

pytestmark = pytest.mark.standin

_IDS = [ObjectId(), ObjectId()]
_DATES = [datetime.datetime(2024, 1, 1, 0, 0, 0, 1000 * i) for i in range(3)]
# Naive datetimes only: the stand-in stores documents with mongomock's naive UTC datetimes.
_VALUES: list[Any] = [
    None, True, 0, 1, 1.0, Int64(1), "a", "b", "", *_IDS, *_DATES,
    ["a"], ["b", "a"], [_DATES[0]], {"x": 1}, {}, [], b"a",
]  # fmt: skip
_FIELDS = ("s", "t", "u")


def _document(r: random.Random) -> dict[str, Any]:
    return {"_id": 1, **{f: r.choice(_VALUES) for f in _FIELDS if r.random() < 0.8}}


def _filter(r: random.Random, depth: int = 0) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for _ in range(r.randint(1, 2)):
        kind = r.random()
        if kind < 0.2 and depth < 2:
            query[r.choice(["$or", "$and"])] = [_filter(r, depth + 1) for _ in range(r.randint(1, 3))]
        elif kind < 0.6:
            query[r.choice(_FIELDS)] = r.choice(["a", "b", "", *_IDS])
        else:
            operators = r.sample(["$lt", "$lte", "$gt", "$gte"], r.randint(1, 2))
            query[r.choice(_FIELDS)] = {op: r.choice(_DATES) for op in operators}
    return query


def test_the_predicate_answers_as_mongomock_or_defers() -> None:
    r = random.Random(20261130)
    answered = 0
    for _ in range(3000):
        query = _filter(r)
        predicate = matcher.compile_filter(query)
        assert predicate is not None, query
        for _ in range(10):
            doc = _document(r)
            answer = predicate(doc)
            if answer is not None:
                answered += 1
                assert answer == filter_applies(query, doc), (query, doc)
    assert answered > 20000  # most documents are answered without mongomock


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"a.b": "x"},
        {"a": 1},
        {"a": None},
        {"a": {"$lte": 5}},
        {"a": {"$lte": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)}},
        {"a": {"$ne": "x"}},
        {"$or": []},
        {"$nor": [{"a": "x"}]},
        {"$or": [{"a": "x"}, {"b": {"$exists": True}}]},
    ],
)
def test_anything_else_is_left_to_mongomock(query: dict[str, Any]) -> None:
    assert matcher.compile_filter(query) is None
