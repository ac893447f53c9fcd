"""Unique-index enforcement for mongomock that costs O(1) per write instead of a collection scan.

mongomock checks a unique index by running ``{field: value, ...}`` as a query over *every*
document on *every* write, which makes inserting into a 10,000-document collection take ~20 ms.
Here a hash map from normalized key values to document ids picks a small *superset* of the
documents that query could match; the very same mongomock query is then run on just those. So
the verdict is mongomock's, only faster; a value the hash can't represent (sub-document, regex,
Decimal128, ...) falls back to mongomock's full scan.

Callers rely on ``ensure_uniques(collection, doc)`` behaving like mongomock's
``Collection._ensure_uniques`` (``doc`` is already in the store; raise if another document shares
a unique key) but raising the detailed ``DuplicateKeyError`` from ``errors.duplicate_key_error``;
on ``find_by_unique_key`` answering an equality query on a unique field exactly (or declining);
and on ``invalidate(store)`` after anything may have changed documents behind its back.

Invariant: every stored document is filed under the key values it holds now. mongomock calls
``_ensure_uniques`` after each insert and after each update that changed a document, which is
where entries are added; entries of deleted documents or of old values linger harmlessly and
are pruned when a lookup meets them.
"""

# mongomock is untyped; its calls are fine here.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime
import itertools
import weakref
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

from bson.int64 import Int64
from bson.objectid import ObjectId
from mongomock import helpers
from mongomock.filtering import filter_applies
from mongomock.store import CollectionStore
from pymongo.errors import DuplicateKeyError

from .errors import duplicate_key_error


class _Wildcard:
    """Bucket for values the hash can't represent; every lookup also reads it."""

    def __repr__(self) -> str:
        return "WILDCARD"


WILDCARD = _Wildcard()
_NUMBERS = (bool, int, Int64, float)  # exact types: == between them is numeric equality


def normalize(value: Any) -> Hashable:
    """A hash key equal for any two values mongomock's ``==`` may find equal (else WILDCARD)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str or kind is ObjectId or kind is datetime.datetime:
        return value  # type: ignore[no-any-return]
    if kind in _NUMBERS:
        try:
            number = float(value)
        except OverflowError:
            return WILDCARD
        return WILDCARD if number != number else number  # NaN never equals itself
    return WILDCARD


def store_key(doc_id: Any) -> Hashable:
    """The key mongomock files a document under in ``CollectionStore._documents``."""
    return helpers.hashdict(doc_id) if isinstance(doc_id, dict) else doc_id


def _field_norms(doc: Any, path: str) -> set[Hashable]:
    """Every bucket component under which a document with ``doc`` at ``path`` must be found."""
    current = doc
    for part in path.split("."):
        if not isinstance(current, dict):
            return {WILDCARD}  # arrays along the path: too many matching rules to mirror
        if part not in current:
            return {None}  # a missing field matches a null query
        current = current[part]
    if isinstance(current, (list, tuple)):
        # {f: v} matches an array holding v, or equal to v (that one goes to WILDCARD).
        return {WILDCARD, *(normalize(item) for item in current)}
    return {normalize(current)}


class _HashIndex:
    """Bucket key (tuple of normalized values, one per indexed field) -> store keys."""

    def __init__(self, spec: dict[str, Any], fields: list[str], documents: object) -> None:
        self.spec = spec
        self.fields = fields
        self.documents = documents  # the store's OrderedDict; a new one means a drop()
        self.buckets: dict[tuple[Hashable, ...], set[Hashable]] = {}
        self.entries = 0

    def keys_of(self, doc: dict[str, Any]) -> Iterator[tuple[Hashable, ...]]:
        return itertools.product(*(_field_norms(doc, f) for f in self.fields))

    def add(self, doc_key: Hashable, doc: dict[str, Any]) -> None:
        for key in self.keys_of(doc):
            bucket = self.buckets.setdefault(key, set())
            if doc_key not in bucket:
                bucket.add(doc_key)
                self.entries += 1

    def candidates(self, values: list[Any]) -> list[tuple[Hashable, ...]] | None:
        """Buckets to read for a query on ``values``; ``None`` when only a full scan will do."""
        options: list[list[Hashable]] = []
        for value in values:
            norm = normalize(value)
            if norm is WILDCARD:
                return None
            choice = [norm, WILDCARD]
            if isinstance(value, ObjectId):
                choice.append(str(value))  # mongomock: an ObjectId query matches its hex in an array
            options.append(choice)
        return list(itertools.product(*options))


_INDEXES: weakref.WeakKeyDictionary[CollectionStore, dict[str, _HashIndex]] = weakref.WeakKeyDictionary()


def invalidate(store: CollectionStore) -> None:
    """Forget the hash indexes of ``store``; they are rebuilt from the documents when next needed."""
    _INDEXES.pop(store, None)


def _hash_index(store: CollectionStore, name: str, spec: dict[str, Any]) -> _HashIndex:
    per_store = _INDEXES.setdefault(store, {})
    index = per_store.get(name)
    documents = store._documents
    # Rebuild after drop()/createIndex, and when dead entries (deleted documents) pile up.
    if (
        index is None
        or index.spec is not spec
        or index.documents is not documents
        or index.entries > 4 * len(documents) + 1000
    ):
        index = _HashIndex(spec, [field for field, _ in spec["key"]], documents)
        for doc_key, doc in list(documents.items()):
            index.add(doc_key, doc)
        per_store[name] = index
    return index


def _matching_docs(
    index: _HashIndex, store: CollectionStore, own_key: Hashable, buckets: list[tuple[Hashable, ...]]
) -> Iterable[dict[str, Any]]:
    seen: set[Hashable] = set()
    for bucket_key in buckets:
        bucket = index.buckets.get(bucket_key)
        if not bucket:
            continue
        for doc_key in list(bucket):
            if doc_key in seen:
                continue
            doc = store._documents.get(doc_key)
            # Prune entries of deleted documents, and of changed ones -- but never the document
            # under check: mongomock may roll it back to the values those entries describe.
            if doc is None or (doc_key != own_key and bucket_key not in set(index.keys_of(doc))):
                bucket.discard(doc_key)
                index.entries -= 1
                continue
            seen.add(doc_key)
            yield doc


def ensure_uniques(collection: Any, new_data: dict[str, Any]) -> None:
    """mongomock's ``_ensure_uniques`` (``new_data`` is already stored), via the hash indexes."""
    try:
        _ensure_uniques(collection, new_data)
    except DuplicateKeyError:
        raise
    except Exception:
        # mongomock keeps the document stored on errors other than duplicates, possibly before
        # every hash index saw it: start them afresh.
        invalidate(collection._store)
        raise


def _ensure_uniques(collection: Any, new_data: dict[str, Any]) -> None:
    store: CollectionStore = collection._store
    store._remove_expired_documents()  # TTL: as mongomock's own scan would
    own_key = store_key(new_data["_id"])
    for name, spec in list(store.indexes.items()):
        if not spec.get("unique"):
            continue
        key_value: dict[str, Any] = {}
        for field, _direction in spec["key"]:
            try:
                key_value[field] = helpers.get_value_by_dot(new_data, field)
            except KeyError:
                key_value[field] = None
        if spec.get("sparse") and all(v is None for v in key_value.values()):
            continue
        query: dict[str, Any] = dict(key_value)
        if spec.get("partialFilterExpression") is not None:
            query = {"$and": [spec["partialFilterExpression"], query]}
        index = _hash_index(store, name, spec)
        index.add(own_key, new_data)
        buckets = index.candidates(list(key_value.values()))
        # list(): store.documents holds mongomock's reader lock until exhausted; raising out of
        # it half-way would leave every later write waiting for that lock forever.
        docs = list(store.documents) if buckets is None else _matching_docs(index, store, own_key, buckets)
        matches = 0
        for doc in docs:
            if filter_applies(query, doc):
                matches += 1
                if matches > 1:
                    namespace = f"{collection.database.name}.{collection.name}"
                    raise duplicate_key_error(namespace, name, dict(spec["key"]), key_value)


def find_by_unique_key(collection: Any, query: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The documents matching ``query`` read through a hash index, or None if that can't be done.

    Applies when ``query`` holds a plain equality on the field of a single-field unique index
    (not sparse, not partial: those don't hold every document). The result is exact -- every
    candidate is checked with mongomock's matcher -- and in natural order because it holds at
    most one document (with more, via the WILDCARD bucket, the caller must scan instead).
    """
    store: CollectionStore = collection._store
    store._remove_expired_documents()  # TTL: as mongomock's own scan would
    for name, spec in list(store.indexes.items()):
        if not spec.get("unique") or spec.get("sparse") or len(spec["key"]) != 1:
            continue
        if spec.get("partialFilterExpression") is not None:
            continue
        field = spec["key"][0][0]
        if field not in query or normalize(query[field]) in (None, WILDCARD):
            continue
        index = _hash_index(store, name, spec)
        buckets = index.candidates([query[field]])
        if buckets is None:
            continue
        docs = [doc for doc in _matching_docs(index, store, None, buckets) if filter_applies(query, doc)]
        return docs if len(docs) <= 1 else None
    return None
