"""Unique-index enforcement for mongomock that costs O(1) per write instead of a collection scan.

mongomock checks a unique index by running ``{field: value, ...}`` (``$and``-ed with the partial
filter, if any) as a query over *every* document on *every* write, so an insert costs more the
larger the collection (docs/performance.md#figures-from-code-comments). Here a key map
(``hashindex``) picks a small *superset* of the documents that query could match; the very same
mongomock query is then run on just those. So the verdict is mongomock's, only faster; a key value
the hash can't represent (sub-document, array, regex, Decimal128, ...) falls back to mongomock's
full scan. A partial index is checked through a map of only the documents its filter admits, so the
many documents outside it (say, ``openKey: null`` under a ``{openKey: {$type: "string"}}`` filter)
cost nothing.

Callers rely on ``ensure_uniques(collection, doc, inserted)`` behaving like mongomock's
``Collection._ensure_uniques`` (``doc`` is already in the store; raise if another document shares
a unique key) but raising the detailed ``DuplicateKeyError`` from ``errors.duplicate_key_error``,
and on it filing ``doc`` in every key map of its store (``inserted``: as the newest document);
and on ``check_new_index`` vetting the documents already there for a new unique index.
"""

# mongomock is untyped; its calls are fine here.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from typing import Any

from mongomock import helpers
from mongomock.filtering import filter_applies
from mongomock.store import CollectionStore
from pymongo.errors import DuplicateKeyError

from . import hashindex
from .errors import duplicate_key_error
from .hashindex import normalize, store_key

__all__ = ["ensure_uniques", "normalize", "store_key"]


def ensure_uniques(collection: Any, new_data: dict[str, Any], inserted: bool = False) -> None:
    """mongomock's ``_ensure_uniques`` (``new_data`` is already stored), via the key maps."""
    try:
        _ensure_uniques(collection, new_data, inserted)
    except DuplicateKeyError:
        raise
    except Exception:
        # mongomock keeps the document stored on errors other than duplicates, possibly before
        # every map saw it: start them afresh.
        hashindex.invalidate(collection._store)
        raise


def _ensure_uniques(collection: Any, new_data: dict[str, Any], inserted: bool) -> None:
    store: CollectionStore = collection._store
    store._remove_expired_documents()  # TTL: as mongomock's own scan would
    maps = hashindex.maps_for(store)
    own_key = store_key(new_data["_id"])
    if inserted:
        maps.note_insert(own_key)
    maps.note_write(own_key, new_data)
    for name, spec in list(store.indexes.items()):
        if spec.get("unique"):
            _check(collection, maps, name, spec, new_data, own_key)


def check_new_index(collection: Any, name: str) -> None:
    """Raise ``DuplicateKeyError`` if the documents already break unique index ``name``.

    For an index just added to the store. Unlike mongomock's ``create_index``, this honours the
    partial filter: documents outside it (say, many with ``openKey: null``) can't collide.
    """
    store: CollectionStore = collection._store
    spec = store.indexes[name]
    maps = hashindex.maps_for(store)
    for doc_key, doc in list(store._documents.items()):
        _check(collection, maps, name, spec, doc, doc_key)


def _check(collection: Any, maps: hashindex.Maps, name: str, spec: Any, doc: dict[str, Any], own_key: Any) -> None:
    """mongomock's check of one unique index for ``doc`` (stored under ``own_key``)."""
    store: CollectionStore = collection._store
    key_value: dict[str, Any] = {}
    for field, _direction in spec["key"]:
        try:
            key_value[field] = helpers.get_value_by_dot(doc, field)
        except KeyError:
            key_value[field] = None
    if spec.get("sparse") and all(v is None for v in key_value.values()):
        return
    query: dict[str, Any] = dict(key_value)
    fields = hashindex.index_fields(spec)
    if spec.get("partialFilterExpression") is not None:
        query = {"$and": [spec["partialFilterExpression"], query]}
        key_map = maps.key_map(fields, name, spec)
    else:
        key_map = maps.key_map(fields)
    keys = key_map.lookup_keys([[value] for value in key_value.values()])
    own: dict[str, Any] | None = None
    if keys is None:
        # list(): store.documents holds mongomock's reader lock until exhausted; raising out of
        # it half-way would leave every later write waiting for that lock forever.
        docs: list[dict[str, Any]] = list(store.documents)
    else:
        found = maps.read(key_map, keys, own_key)
        docs = list(found.values())
        if not key_map.filter_raised:
            # Only the count matters (more than one match is a duplicate), and the document
            # itself matters only when exactly one other matches: test it last, if then. Safe
            # because it can't raise: the query is plain equality on hashable values, and
            # the partial filter (if any) already ran on it, without raising, to file it here.
            own = found.get(own_key)
    stats = collection._query_stats() if hasattr(collection, "_query_stats") else None
    if stats is not None:
        if keys is None:
            stats.unique_check_scans += 1
        else:
            stats.unique_check_candidates += len(docs)
    matches = 0
    for other in docs:
        if other is not own and filter_applies(query, other):
            matches += 1
            if matches > 1:
                break
    if matches == 1 and own is not None and filter_applies(query, own):
        matches += 1
    if matches > 1:
        namespace = f"{collection.database.name}.{collection.name}"
        raise duplicate_key_error(namespace, name, dict(spec["key"]), key_value)
