"""Query planning: narrow a query to candidate documents through ``_id`` or an index's key map.

``candidates(store, query)`` looks for plain equality in the query -- ``{f: v}``, ``{f: {$eq: v}}``
or ``{f: {$in: [...]}}``, at the top level or inside a top-level ``$and`` -- on ``_id`` or on every
field of some index, or of a prefix of a compound index (unique or not, sparse or partial alike:
the key maps hold *every* document, whatever the index's options). When it finds such fields it
returns the documents filed under the queried values: a superset of the matches, in natural
order. Failing that, a top-level ``$or`` whose every branch can be narrowed so gives the union.
The caller must still run the whole query on each candidate with mongomock's matcher -- which
is what makes the answer mongomock's, extra conditions, sort and projection included.

It returns ``None`` ("scan everything") when no index covers the equalities, when a value can't
be hashed (sub-document, array, regex, NaN, Binary, Decimal128...), or when the store's order of
a candidate is unknown. Among several usable indexes it reads the one with the fewest entries.
"""

# mongomock is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime
from collections.abc import Hashable
from typing import Any

from bson.int64 import Int64
from bson.objectid import ObjectId
from mongomock.store import CollectionStore

from . import hashindex
from .hashindex import WILDCARD, normalize

Found = dict[Hashable, dict[str, Any]]  # store key -> document

# _id value types for which dict lookup finds exactly what mongomock's == would (bool excluded:
# True == 1 in Python, not in MongoDB; float excluded: NaN).
_FAST_ID_TYPES = frozenset({ObjectId, str, int, Int64, datetime.datetime})


def _equal_values(condition: Any) -> list[Any] | None:
    """The values a field must equal (one of) under ``condition``; None if it isn't that simple."""
    if isinstance(condition, dict):
        # mongomock reads a dict as operators only when every key is one; else it's a literal.
        if not condition or not all(isinstance(k, str) and k.startswith("$") for k in condition):
            return None
        if "$eq" in condition:
            values = [condition["$eq"]]
        elif isinstance(condition.get("$in"), (list, tuple)):
            values = list(condition["$in"])
        else:
            return None
    else:
        values = [condition]
    if any(normalize(value) is WILDCARD for value in values):
        return None
    return values


def is_by_id_of(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``query`` is ``{_id: v}`` alone, with ``doc``'s ``_id`` ``v`` itself: same type, equal
    (for those types, mongomock's matcher then finds that ``doc`` matches)."""
    if len(query) != 1:
        return False
    value = query.get("_id", WILDCARD)
    return type(value) in _FAST_ID_TYPES and type(doc.get("_id")) is type(value) and doc["_id"] == value


def equalities(query: dict[str, Any]) -> dict[str, list[Any]]:
    """Field -> the values it must equal one of, for every field ``query`` constrains that way."""
    found: dict[str, list[Any]] = {}
    _collect(query, found)
    return found


def _collect(query: dict[str, Any], found: dict[str, list[Any]]) -> None:
    for field, condition in query.items():
        if field == "$and":
            if isinstance(condition, list) and all(isinstance(clause, dict) for clause in condition):
                for clause in condition:
                    _collect(clause, found)
            continue
        if not isinstance(field, str) or field.startswith("$") or field in found:
            continue
        values = _equal_values(condition)
        if values is not None:
            found[field] = values


def candidates(store: CollectionStore, query: Any) -> list[dict[str, Any]] | None:
    """A superset of the documents matching ``query``, in natural order; None to scan instead."""
    if not isinstance(query, dict) or not query:
        return None
    doc_id = query.get("_id", WILDCARD)
    if type(doc_id) in _FAST_ID_TYPES:
        # The commonest query, {_id: v, ...}: what _by_equalities would find, without parsing the rest.
        store._remove_expired_documents()
        doc = store._documents.get(doc_id)
        return [] if doc is None else [doc]
    equal = equalities(query)
    if not equal and "$or" not in query:
        return None
    store._remove_expired_documents()  # TTL: as mongomock's own scan would
    maps = hashindex.maps_for(store)
    found = _narrow(store, maps, query, equal)
    return None if found is None else maps.in_natural_order(found)


def _narrow(
    store: CollectionStore, maps: hashindex.Maps, query: dict[str, Any], equal: dict[str, list[Any]] | None = None
) -> Found | None:
    found = _by_equalities(store, maps, equalities(query) if equal is None else equal)
    if found is not None:
        return found
    # {$or: [q1, q2...]}: the union of each branch's candidates, if every branch has some.
    branches = query.get("$or")
    if not isinstance(branches, list) or not branches or not all(isinstance(b, dict) and b for b in branches):
        return None
    union: Found = {}
    for branch in branches:
        found = _narrow(store, maps, branch)
        if found is None:
            return None
        union.update(found)
    return union


def _by_equalities(store: CollectionStore, maps: hashindex.Maps, equal: dict[str, list[Any]]) -> Found | None:
    if not equal:
        return None
    if "_id" in equal and all(type(value) in _FAST_ID_TYPES for value in equal["_id"]):
        found: Found = {}
        for value in equal["_id"]:
            doc = maps.documents.get(value)
            if doc is not None:
                found[value] = doc
        return found
    # The longest prefix of each index's key that the query pins down.
    choices: set[tuple[str, ...]] = set()
    for spec in list(store.indexes.values()):
        fields = hashindex.index_fields(spec)
        used = 0
        while used < len(fields) and fields[used] in equal:
            used += 1
        if used:
            choices.add(fields[:used])
    best: tuple[int, hashindex.KeyMap, list[hashindex.Key]] | None = None
    for fields in sorted(choices, key=len, reverse=True):
        key_map = maps.key_map(fields)
        keys = key_map.lookup_keys([equal[field] for field in fields])
        if keys is None:
            continue
        size = key_map.size(keys) if len(choices) > 1 else 0  # (no need to compare a single one)
        if best is None or size < best[0]:
            best = (size, key_map, keys)
    if best is None:
        return None
    _size, key_map, keys = best
    return maps.read(key_map, keys)
