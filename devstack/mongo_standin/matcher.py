"""mongomock's ``filter_applies`` for the simplest filters, with the same answers for less CPU.

The candidates an index narrows a query to still go through mongomock's matcher, slow per document:
the notification sweep's ``$or`` of ``{status: s, updatedAt: {$lte: t}}`` branches meets every
pending notification, thousands during a burst, and held every other command up
(docs/performance.md#figures-from-code-comments). ``compile_filter`` turns a filter made only of
these into a plain Python predicate:
  * ``{field: v}`` with ``v`` a string or an ObjectId (equality);
  * ``{field: {$lt | $lte | $gt | $gte: d}}`` with ``d`` a naive datetime (as mongomock hands
    filters to ``_iter_documents``), one or more of them;
  * ``$and`` / ``$or`` of a non-empty list of such filters.
Top-level field names only (no dots). The predicate answers None for a document whose value is
something mongomock treats specially (an array, a sub-document, an aware datetime): the caller then
asks ``filter_applies`` for that document. Anything else in the filter: ``compile_filter`` is None.
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable
from typing import Any

from bson import ObjectId

#: What a document's value may be checked against directly; None: ask mongomock.
Predicate = Callable[[dict[str, Any]], bool | None]

_MISSING = object()
_EQUAL_TYPES = (str, ObjectId)
_RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def compile_filter(query: Any) -> Predicate | None:
    """A predicate with ``filter_applies(query, doc)``'s answers, or None if ``query`` is not simple."""
    if not isinstance(query, dict) or not query:
        return None
    parts: list[Predicate] = []
    for key, condition in query.items():
        part = _combined(key, condition) if key in ("$and", "$or") else _field(key, condition)
        if part is None:
            return None
        parts.append(part)
    return parts[0] if len(parts) == 1 else _all(parts)


def _combined(key: str, branches: Any) -> Predicate | None:
    if not isinstance(branches, list) or not branches:
        return None
    compiled = [compile_filter(branch) for branch in branches]
    if any(c is None for c in compiled):
        return None
    predicates = [c for c in compiled if c is not None]
    return _all(predicates) if key == "$and" else _any(predicates)


def _field(name: Any, condition: Any) -> Predicate | None:
    if not isinstance(name, str) or not name or name.startswith("$") or "." in name:
        return None
    if type(condition) in _EQUAL_TYPES:
        return _equals(name, condition)
    if isinstance(condition, dict) and condition and all(op in _RANGES for op in condition):
        bounds = list(condition.items())
        if all(type(d) is datetime.datetime and d.tzinfo is None for _, d in bounds):
            return _in_range(name, [(_RANGES[op], d) for op, d in bounds])
    return None


def _equals(name: str, wanted: Any) -> Predicate:
    kind = type(wanted)

    def check(doc: dict[str, Any]) -> bool | None:
        value = doc.get(name, _MISSING)
        if type(value) is kind:
            return bool(value == wanted)
        return None if isinstance(value, (list, dict)) else False

    return check


def _in_range(name: str, bounds: list[tuple[Callable[[Any, Any], bool], datetime.datetime]]) -> Predicate:
    def check(doc: dict[str, Any]) -> bool | None:
        value = doc.get(name, _MISSING)
        if type(value) is datetime.datetime:
            if value.tzinfo is not None:
                return None
            return all(compare(value, bound) for compare, bound in bounds)
        return None if isinstance(value, (list, dict, datetime.datetime)) else False

    return check


def _all(predicates: list[Predicate]) -> Predicate:
    return _decided_by(predicates, False)


def _any(predicates: list[Predicate]) -> Predicate:
    return _decided_by(predicates, True)


def _decided_by(predicates: list[Predicate], decisive: bool) -> Predicate:
    """The first ``decisive`` answer wins (False for ``$and``, True for ``$or``); else, any doubt
    is doubt, and otherwise the answer is the other one."""

    def check(doc: dict[str, Any]) -> bool | None:
        unsure = False
        for predicate in predicates:
            answer = predicate(doc)
            if answer is decisive:
                return decisive
            unsure = unsure or answer is None
        return None if unsure else not decisive

    return check
