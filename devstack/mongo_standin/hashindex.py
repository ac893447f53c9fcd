"""Hash maps from indexed field values to documents: the stand-in's indexes, as candidate filters.

A ``KeyMap`` files every document of a collection under the *normalized* values it holds in some
fields (an index's key, or a prefix of it). It never decides anything: it picks a small *superset*
of the documents an equality query on those fields could match, and mongomock's own matcher then
runs on just those. Hence the rules:
  * ``normalize`` maps any two values mongomock's ``==`` may find equal to the same key (1, 1.0,
    True and Int64(1) share one); a value it can't represent (sub-document, regex, Binary, NaN...)
    goes to the ``WILDCARD`` bucket, which every lookup also reads;
  * a document holding an array at an indexed path is filed under each (scalar) element, as in
    a multikey index; one holding a sub-document or an empty array, under nothing: those equal
    only a sub-document or an array, values a lookup never queries by (it declines them);
  * arrays along a dotted path, or more than ``_MAX_KEYS_PER_DOC`` keys for one document, file
    it under WILDCARD only;
  * a missing field files the document under ``None`` (``{f: null}`` matches it).

Callers rely on this invariant: every document in the store is filed under every key it produces
*now*, in every map of its store. Writers keep it by calling ``note_write`` after anything that
changed a document (``backend`` does, after each insert and each update), ``note_insert`` before
an insert, and ``invalidate`` when a write failed half-way. Entries of deleted documents and of
old values linger harmlessly and are pruned when a lookup meets them; a ``drop()`` (new document
dict) or a changed index list resets what depends on it.

``Maps.order`` remembers each document's position in the store's insertion order (mongomock's
natural order), so candidates from several buckets come back in the order a scan would give.

TTL indexes get an ``ExpiryQueue``: a heap of documents by the date their TTL field holds, so
``expire`` (mongomock's ``_remove_expired_documents``, which runs before nearly every read of
the store) pops just the expired documents instead of testing every document every time.
"""

# mongomock is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime
import decimal
import fractions
import heapq
import itertools
import weakref
from collections.abc import Hashable, Iterable
from typing import Any

import mongomock
from bson.int64 import Int64
from bson.objectid import ObjectId
from mongomock import helpers
from mongomock import store as mongomock_store
from mongomock.filtering import filter_applies
from mongomock.store import CollectionStore


class _Wildcard:
    """Bucket for values the hash can't represent; every lookup also reads it."""

    def __repr__(self) -> str:
        return "WILDCARD"


WILDCARD = _Wildcard()
# Types whose == between one another is numeric equality (all of them convert to float exactly
# enough: equal values give equal floats; unequal ones may share a float, which only widens a bucket).
_NUMBERS = (bool, int, Int64, float, decimal.Decimal, fractions.Fraction)
_MAX_KEYS_PER_DOC = 256  # beyond this, a document goes to the all-WILDCARD bucket only
_MAX_LOOKUP_KEYS = 4096  # beyond this many buckets to read, a lookup declines


def normalize(value: Any) -> Hashable:
    """A hash key equal for any two values mongomock's ``==`` may find equal (else WILDCARD)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str or kind is ObjectId:
        return value  # type: ignore[no-any-return]
    if isinstance(value, datetime.datetime):
        # As mongomock stores and compares them: naive UTC, millisecond precision.
        try:
            return helpers.patch_datetime_awareness_in_document(value)  # type: ignore[no-any-return]
        except Exception:
            return WILDCARD
    if isinstance(value, _NUMBERS):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError, ArithmeticError):
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
        # {f: v} matches an array holding v, or equal to v -- but lookups never query by an array.
        return {normalize(item) for item in current if not isinstance(item, (dict, list, tuple))}
    if isinstance(current, dict):
        return set()  # equal to sub-documents only, and lookups never query by one
    return {normalize(current)}


Key = tuple[Hashable, ...]


class KeyMap:
    """Bucket key (one normalized value per field) -> store keys of the documents filed there.

    With ``doc_filter`` (a partial index's filter expression), only documents matching it are
    filed: such a map serves the unique checks of that partial index, not queries.
    """

    def __init__(self, fields: tuple[str, ...], doc_filter: dict[str, Any] | None = None, spec: Any = None) -> None:
        self.fields = fields
        self.doc_filter = doc_filter
        self.spec = spec  # the index definition a filtered map belongs to (identity checked)
        self.buckets: dict[Key, set[Hashable]] = {}
        self.entries = 0
        self.rebuild_at = 0
        # Whether ``doc_filter`` ever raised on a document: until it does, a document filed here
        # is one the filter matched (``unique`` relies on that).
        self.filter_raised = False
        # Per field: whether some bucket key has WILDCARD there, or a string. Until one does, a
        # lookup needn't read the buckets it would need for those (most maps have neither).
        self.wild = [False] * len(fields)
        self.strings = [False] * len(fields)

    def keys_of(self, doc: dict[str, Any]) -> set[Key]:
        if self.doc_filter is not None:
            try:
                if not filter_applies(self.doc_filter, doc):
                    return set()
            except Exception:
                self.filter_raised = True  # can't tell: file it, a superset is always safe
        if len(self.fields) == 1:  # the usual case, without the product's machinery
            one = _field_norms(doc, self.fields[0])
            return {(WILDCARD,)} if len(one) > _MAX_KEYS_PER_DOC else {(norm,) for norm in one}
        norms = [_field_norms(doc, field) for field in self.fields]
        count = 1
        for options in norms:
            count *= len(options)
        if count > _MAX_KEYS_PER_DOC:
            return {(WILDCARD,) * len(self.fields)}
        return set(itertools.product(*norms))

    def add(self, doc_key: Hashable, doc: dict[str, Any]) -> None:
        for key in self.keys_of(doc):
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = set()
                for i, part in enumerate(key):
                    if part is WILDCARD:
                        self.wild[i] = True
                    elif type(part) is str:
                        self.strings[i] = True
            if doc_key not in bucket:
                bucket.add(doc_key)
                self.entries += 1

    def lookup_keys(self, values: list[list[Any]]) -> list[Key] | None:
        """Buckets to read for documents equal to one of ``values[i]`` on each field ``i``.

        ``None`` when a value can't be hashed or there would be too many buckets.
        """
        options: list[list[Hashable]] = []
        total = 1
        for i, field_values in enumerate(values):
            choice: list[Hashable] = []
            for value in field_values:
                norm = normalize(value)
                if norm is WILDCARD:
                    return None
                choice.append(norm)
                if self.strings[i] and isinstance(value, ObjectId):
                    choice.append(str(value))  # mongomock: an ObjectId query matches its hex in an array
            choice = [*dict.fromkeys(choice), WILDCARD] if self.wild[i] else [*dict.fromkeys(choice)]
            total *= len(choice)
            if total > _MAX_LOOKUP_KEYS:
                return None
            options.append(choice)
        return list(itertools.product(*options))

    def size(self, keys: Iterable[Key]) -> int:
        """How many entries the buckets ``keys`` hold (an upper bound on the documents they give)."""
        return sum(len(self.buckets.get(key, ())) for key in keys)


class ExpiryQueue:
    """The documents of a TTL index by the (earliest) date in their TTL field, as mongomock reads it.

    Holds every document whose TTL field gives a naive datetime (others never expire), possibly
    more than once and under dates it no longer holds: ``due`` re-checks before anyone deletes.
    """

    def __init__(self, spec: Any, field: str) -> None:
        self.spec = spec  # the index definition it belongs to (identity checked)
        self.field = field
        self.heap: list[tuple[datetime.datetime, int, Hashable]] = []
        self.pushed: dict[Hashable, datetime.datetime] = {}  # each document's latest entry
        self.seq = itertools.count()

    def add(self, doc_key: Hashable, doc: dict[str, Any]) -> None:
        when = mongomock_store._get_min_datetime_from_value(doc.get(self.field))
        if not isinstance(when, datetime.datetime) or when.tzinfo is not None or when == datetime.datetime.max:
            self.pushed.pop(doc_key, None)  # can't expire (mongomock's subtraction would fail)
            return
        if self.pushed.get(doc_key) != when:
            heapq.heappush(self.heap, (when, next(self.seq), doc_key))
            self.pushed[doc_key] = when

    def due(self, now: datetime.datetime, expiry: int) -> list[Hashable]:
        """Pop the entries whose date is at least ``expiry`` seconds before ``now``."""
        keys: list[Hashable] = []
        while self.heap and (now - self.heap[0][0]).total_seconds() >= expiry:
            when, _seq, doc_key = heapq.heappop(self.heap)
            if self.pushed.get(doc_key) == when:
                del self.pushed[doc_key]
            keys.append(doc_key)
        return keys


class Maps:
    """The key maps of one collection store, and its documents' natural order."""

    def __init__(self, store: CollectionStore) -> None:
        self.documents: dict[Hashable, dict[str, Any]] = store._documents  # a new one means drop()
        self.maps: dict[tuple[tuple[str, ...], str | None], KeyMap] = {}
        self.indexes: list[tuple[str, Any]] = []  # the index list the maps were checked against
        self.order: dict[Hashable, int] = {}
        self.next_seq = 0
        self.expiry: dict[str, ExpiryQueue] = {}
        self._number_documents()

    def _number_documents(self) -> None:
        self.order = {doc_key: seq for seq, doc_key in enumerate(self.documents)}
        self.next_seq = len(self.order)

    def sync_indexes(self, store: CollectionStore) -> None:
        """Forget maps no index needs any more (after dropIndexes, or a re-created index)."""
        indexes = store.indexes
        if len(indexes) == len(self.indexes):  # (a loop, not all(): this runs several times a command)
            for name, spec in self.indexes:
                if indexes.get(name) is not spec:
                    break
            else:
                return
        self.indexes = list(indexes.items())
        prefixes: set[tuple[str, ...]] = set()
        for spec in indexes.values():
            fields = index_fields(spec)
            prefixes.update(fields[:n] for n in range(1, len(fields) + 1))
        for map_key, key_map in list(self.maps.items()):
            fields, partial_of = map_key
            if partial_of is None:
                if fields not in prefixes:
                    del self.maps[map_key]
            elif indexes.get(partial_of) is not key_map.spec:
                del self.maps[map_key]
        for name, queue in list(self.expiry.items()):
            if indexes.get(name) is not queue.spec:
                del self.expiry[name]

    def key_map(self, fields: tuple[str, ...], partial_of: str | None = None, spec: Any = None) -> KeyMap:
        """The map on ``fields`` (of all documents; or, with ``partial_of``, of that partial index's)."""
        map_key = (fields, partial_of)
        key_map = self.maps.get(map_key)
        # Rebuild when dead entries (deleted documents, old values) may have piled up.
        if key_map is None or key_map.entries > key_map.rebuild_at:
            doc_filter = spec.get("partialFilterExpression") if partial_of is not None else None
            key_map = KeyMap(fields, doc_filter, spec)
            for doc_key, doc in list(self.documents.items()):
                key_map.add(doc_key, doc)
            # Arrays give a document several entries: measure from what is live now.
            key_map.rebuild_at = 2 * key_map.entries + 4 * len(self.documents) + 1000
            self.maps[map_key] = key_map
        return key_map

    def expiry_queue(self, name: str, spec: Any) -> ExpiryQueue:
        """The queue of TTL index ``name`` (single-field), built from the documents if need be."""
        queue = self.expiry.get(name)
        if queue is None or queue.spec is not spec or len(queue.heap) > 2 * len(self.documents) + 1000:
            queue = ExpiryQueue(spec, spec["key"][0][0])
            for doc_key, doc in list(self.documents.items()):
                queue.add(doc_key, doc)
            self.expiry[name] = queue
        return queue

    def note_insert(self, doc_key: Hashable) -> None:
        """``doc_key`` was just added to the store, so it comes last in the natural order."""
        if len(self.order) > 2 * len(self.documents) + 1000:
            self._number_documents()  # forget deleted documents
        self.order[doc_key] = self.next_seq
        self.next_seq += 1

    def note_write(self, doc_key: Hashable, doc: dict[str, Any]) -> None:
        """The document under ``doc_key`` now holds ``doc``: file it under its current keys."""
        for key_map in self.maps.values():
            key_map.add(doc_key, doc)
        for queue in self.expiry.values():
            queue.add(doc_key, doc)

    def read(self, key_map: KeyMap, keys: Iterable[Key], own_key: Hashable = None) -> dict[Hashable, dict[str, Any]]:
        """The live documents filed under ``keys``, by store key; prunes the dead entries met.

        The document ``own_key`` (one being checked for uniqueness) is never pruned: mongomock
        may roll it back to the values those entries describe.
        """
        found: dict[Hashable, dict[str, Any]] = {}
        current_keys: dict[Hashable, set[Key]] = {}
        for bucket_key in keys:
            bucket = key_map.buckets.get(bucket_key)
            if not bucket:
                continue
            for doc_key in list(bucket):
                if doc_key in found:
                    continue
                doc = self.documents.get(doc_key)
                if doc is not None and doc_key != own_key:
                    if doc_key not in current_keys:
                        current_keys[doc_key] = key_map.keys_of(doc)
                    if bucket_key not in current_keys[doc_key]:
                        doc = None
                if doc is None:
                    bucket.discard(doc_key)
                    key_map.entries -= 1
                    continue
                found[doc_key] = doc
        return found

    def in_natural_order(self, found: dict[Hashable, dict[str, Any]]) -> list[dict[str, Any]] | None:
        """``found``'s documents in the store's order; None if some position is unknown."""
        if len(found) <= 1:
            return list(found.values())
        try:
            ordered = sorted(found, key=self.order.__getitem__)
        except KeyError:
            return None
        return [found[doc_key] for doc_key in ordered]


_MAPS: weakref.WeakKeyDictionary[CollectionStore, Maps] = weakref.WeakKeyDictionary()


def index_fields(spec: dict[str, Any]) -> tuple[str, ...]:
    """The fields of an index definition, in key order."""
    return tuple(field for field, _direction in spec["key"])


def maps_for(store: CollectionStore) -> Maps:
    """The maps of ``store``, current with its document dict and index list."""
    maps = _MAPS.get(store)
    if maps is None or maps.documents is not store._documents:
        maps = _MAPS[store] = Maps(store)
    maps.sync_indexes(store)
    return maps


def invalidate(store: CollectionStore) -> None:
    """Forget the maps of ``store``; they are rebuilt from the documents when next needed."""
    _MAPS.pop(store, None)


def expire(store: CollectionStore) -> None:
    """mongomock's ``CollectionStore._remove_expired_documents``, reading only expired documents.

    Same verdict per document (mongomock's own ``_value_meets_expiry``, at ``mongomock.utcnow()``).
    """
    ttl_indexes = store._ttl_indexes
    if not ttl_indexes:
        return
    maps = maps_for(store)
    for name, spec in list(ttl_indexes.items()):
        try:
            expiry = int(spec["expireAfterSeconds"])
        except ValueError:
            continue
        if len(spec["key"]) > 1:
            continue  # mongomock ignores compound TTL indexes
        queue = maps.expiry_queue(name, spec)
        now = mongomock.utcnow()  # type: ignore[attr-defined]  # (the one tests patch, as store.py reads it)
        for doc_key in queue.due(now, expiry):
            doc = maps.documents.get(doc_key)
            if doc is not None and store._value_meets_expiry(doc.get(queue.field), expiry, now):
                del store[doc_key]
