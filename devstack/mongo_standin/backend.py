"""mongomock, adapted to serve as the stand-in's storage engine.

Subclasses, never patches: mongomock stays untouched for anyone else in the process. Callers rely
on ``StandinClient`` behaving like ``mongomock.MongoClient`` (same store, same semantics) with
these differences:
  * it reports server version 7.0.0 (mongomock gates some behaviour on the version);
  * a query (find, count, distinct, update, delete, findAndModify, aggregate's leading ``$match``)
    with plain equality on ``_id`` or on all fields of an index (or a prefix of one) runs
    mongomock's matcher on the documents filed under those values only (``lookup.py``, over the
    key maps of ``hashindex.py``); others scan. ``StandinClient.query_stats`` counts both;
  * unique indexes are checked through the same key maps (``unique.py``), and every duplicate key
    -- on ``_id`` too -- raises a ``DuplicateKeyError`` carrying index name, keyPattern and keyValue;
  * TTL expiry (which mongomock runs before nearly every read) pops expired documents from a
    queue instead of testing every document, in stores made by ``StandinServerStore``;
  * ``$inc`` keeps a 64-bit integer 64-bit, as MongoDB does;
  * ``drop_database_store`` forgets a database entirely (mongomock keeps empty shells forever);
  * the stores made by ``StandinServerStore`` report every change to its ``changes`` log while it
    is active (``changes.py``: what the journal writes down), and don't take mongomock's
    reader/writer lock: use them from one thread at a time (the engine runs one command at a time);
  * update, insert, find_one and the copies of what find returns go through ``fastpaths.py``:
    mongomock's steps and results, for less CPU.
"""

# mongomock is untyped; calling into it from here is the point of this module.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pymongo.errors
from bson.int64 import Int64
from mongomock import aggregate as mongomock_aggregate
from mongomock import collection as mongomock_collection
from mongomock import helpers
from mongomock.collection import Collection
from mongomock.database import Database
from mongomock.filtering import filter_applies
from mongomock.mongo_client import MongoClient
from mongomock.store import CollectionStore, DatabaseStore, ServerStore

from . import fastpaths, hashindex, lookup, matcher, unique
from .changes import ChangeLog
from .errors import duplicate_key_error

SERVER_VERSION = "7.0.0"


def _field(doc: Any, field_name: str) -> Any:
    if isinstance(doc, dict):
        return doc.get(field_name)
    if isinstance(doc, list) and field_name.isdigit() and int(field_name) < len(doc):
        return doc[int(field_name)]
    return None


def _typed_inc(doc: Any, field_name: str, value: Any) -> None:
    """mongomock's ``$inc``, but long + int stays a long (Python's Int64 + int is a plain int)."""
    before = _field(doc, field_name)
    mongomock_collection._inc_updater(doc, field_name, value)
    after = _field(doc, field_name)
    if type(after) is int and (isinstance(before, Int64) or isinstance(value, Int64)):
        if isinstance(doc, dict):
            doc[field_name] = Int64(after)
        else:
            doc[int(field_name)] = Int64(after)


class StandinCollectionStore(CollectionStore):
    """A collection's data, expiring TTL documents through a queue instead of a scan per read,
    and reporting its changes to ``changes`` while that log is active.

    Its item access skips mongomock's reader/writer lock: the stand-in's engine runs one command
    at a time (``commands.py``), so the lock guarded nothing, and its acquire/release pairs cost
    a tenth of a write's CPU.
    """

    def __init__(self, name: str, db_name: str = "", changes: ChangeLog | None = None) -> None:
        super().__init__(name)
        self.db_name = db_name
        self.changes = changes

    def _recording(self) -> ChangeLog | None:
        changes = self.changes
        return changes if changes is not None and changes.active else None

    def _remove_expired_documents(self) -> None:
        if self._ttl_indexes:
            hashindex.expire(self)

    def __contains__(self, key: Hashable) -> bool:
        self._remove_expired_documents()
        return key in self._documents

    def __getitem__(self, key: Hashable) -> Any:
        self._remove_expired_documents()
        return self._documents[key]

    def __len__(self) -> int:
        self._remove_expired_documents()
        return len(self._documents)

    @property
    def documents(self) -> Iterator[dict[str, Any]]:
        self._remove_expired_documents()
        yield from self._documents.values()

    def __setitem__(self, key: Hashable, val: Any) -> None:
        changes = self._recording()
        if changes is not None:
            changes.note_set(self, key, key not in self._documents)
        self._documents[key] = val

    def __delitem__(self, key: Hashable) -> None:
        del self._documents[key]
        changes = self._recording()
        if changes is not None:
            changes.note_document(self, key)

    def note_changed(self, key: Hashable) -> None:
        """Document ``key`` was (maybe) changed in place, by an update."""
        changes = self._recording()
        if changes is not None:
            changes.note_document(self, key)

    def create(self) -> None:
        super().create()
        changes = self._recording()
        if changes is not None:
            changes.note_catalog(self)

    def drop(self) -> None:
        super().drop()
        changes = self._recording()
        if changes is not None:
            changes.note_drop(self)

    def create_index(self, index_name: str, index_dict: dict[str, Any]) -> None:
        super().create_index(index_name, index_dict)
        changes = self._recording()
        if changes is not None:
            changes.note_catalog(self)

    def drop_index(self, index_name: str) -> None:
        super().drop_index(index_name)
        changes = self._recording()
        if changes is not None:
            changes.note_catalog(self)


class StandinDatabaseStore(DatabaseStore):
    """A database's data, made of ``StandinCollectionStore``s."""

    def __init__(self, name: str = "", changes: ChangeLog | None = None) -> None:
        super().__init__()
        self.name = name
        self.changes = changes

    def __getitem__(self, col_name: str) -> CollectionStore:
        collections: dict[str, CollectionStore] = self._collections
        collection = collections.get(col_name)
        if collection is None:
            collection = collections[col_name] = StandinCollectionStore(col_name, self.name, self.changes)
        return collection

    def rename(self, name: str, new_name: str) -> None:
        collections: dict[str, CollectionStore] = self._collections
        collection = collections.pop(name, None)
        if collection is None:
            collection = StandinCollectionStore(new_name, self.name, self.changes)
        collection.name = new_name
        collections[new_name] = collection
        if self.changes is not None and self.changes.active:
            self.changes.note_rename(self.name, name, new_name)


class StandinServerStore(ServerStore):
    """The whole server's data, made of ``StandinDatabaseStore``s; ``changes`` is their change log."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = ChangeLog(self)

    def __getitem__(self, db_name: str) -> DatabaseStore:
        databases: dict[str, DatabaseStore] = self._databases
        database = databases.get(db_name)
        if database is None:
            database = databases[db_name] = StandinDatabaseStore(db_name, self.changes)
        return database


@dataclass
class QueryStats:
    """What reading documents cost, for tests and benchmarks (never reset by the server)."""

    full_scans: int = 0  # queries that read every document
    scanned_documents: int = 0  # documents those scans ran the matcher on
    indexed_queries: int = 0  # queries narrowed through _id or an index's key map
    candidate_documents: int = 0  # documents those narrowed queries ran the matcher on
    unique_check_scans: int = 0  # unique-index checks that read every document
    unique_check_candidates: int = 0  # documents the other unique checks ran the matcher on


class StandinCollection(Collection):
    """A mongomock collection with index-served lookups and detailed duplicate-key errors."""

    _inserting = False  # inside _insert of one document (its _ensure_uniques sees a new document)
    _failed_key: Hashable = None  # the document whose unique check failed last
    _stats: QueryStats | Literal[False] | None = None  # _query_stats' answer, once looked up (False: none)

    def _query_stats(self) -> QueryStats | None:
        """The counters of the client this collection belongs to (None outside a StandinClient)."""
        if self._stats is None:
            stats = getattr(getattr(self.database, "client", None), "query_stats", None)
            self._stats = stats if isinstance(stats, QueryStats) else False
        return self._stats or None

    def _iter_documents(self, filter: Any) -> Iterator[dict[str, Any]]:
        stats = self._query_stats()
        docs = lookup.candidates(self._store, filter)
        if docs is None:
            if stats is not None:
                stats.full_scans += 1
                stats.scanned_documents += len(self._store._documents)
            result: Iterator[dict[str, Any]] = super()._iter_documents(filter)
            return result
        if stats is not None:
            stats.indexed_queries += 1
            stats.candidate_documents += len(docs)
        if len(docs) == 1 and lookup.is_by_id_of(filter, docs[0]):
            return iter(docs)  # what the matcher would say, known without it
        match = matcher.compile_filter(filter)
        if match is None:
            found = [doc for doc in docs if filter_applies(filter, doc)]
        else:  # mongomock's matcher only where the predicate can't tell
            found = [doc for doc in docs if (m := match(doc)) or (m is None and filter_applies(filter, doc))]
        if not found:
            filter_applies(filter, {})  # still reject an invalid filter, as mongomock does
        return iter(found)

    def aggregate(self, pipeline: Any, session: Any = None, **kwargs: Any) -> Any:
        """mongomock's ``aggregate``, fed only the candidates of a leading ``$match`` when it can."""
        first = pipeline[0] if isinstance(pipeline, list) and pipeline else None
        if (
            not session
            and not self.codec_options.tz_aware
            and isinstance(first, dict)
            and list(first) == ["$match"]
            and isinstance(first["$match"], dict)
        ):
            # The $match stage itself still runs, on the candidates (a superset, in natural order).
            docs = lookup.candidates(self._store, helpers.patch_datetime_awareness_in_document(first["$match"]))
            if docs is not None:
                stats = self._query_stats()
                if stats is not None:
                    stats.indexed_queries += 1
                    stats.candidate_documents += len(docs)
                in_collection = [self._copy_only_fields(doc, None, dict) for doc in docs]
                return mongomock_aggregate.process_pipeline(in_collection, self.database, pipeline, session)
        return super().aggregate(pipeline, session, **kwargs)

    def _insert(self, data: Any, session: Any = None, ordered: bool = True) -> Any:
        if not isinstance(data, Mapping):
            return super()._insert(data, session, ordered)  # comes back here for each document
        if "_id" in data and hashindex.store_key(data["_id"]) in self._store:
            namespace = f"{self.database.name}.{self.name}"
            raise duplicate_key_error(namespace, "_id_", {"_id": 1}, {"_id": data["_id"]})
        self._inserting = True
        try:
            return super()._insert(data, session, ordered) if session else fastpaths.insert(self, data)
        finally:
            self._inserting = False

    def _copy_only_fields(self, doc: Any, fields: Any, container: Any) -> Any:
        if fields is None and container is dict:  # a whole document, as find returns it
            return fastpaths.copied(doc)
        if fields is fastpaths.STORED:
            return doc
        return super()._copy_only_fields(doc, fields, container)

    def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        """mongomock's ``find_one``; without its ``Cursor`` for a filter, projection and sort."""
        if (
            type(filter) is dict
            and len(args) + len(kwargs.keys() & {"projection"}) <= 1
            and kwargs.keys() <= {"projection", "sort"}
            and not self.codec_options.tz_aware
        ):
            projection = args[0] if args else kwargs.get("projection")
            return fastpaths.find_one(self, filter, projection, kwargs.get("sort"))
        return super().find_one(filter, *args, **kwargs)

    def _update_document_fields_with_positional_awareness(
        self, existing_document: Any, v: Any, spec: Any, updater: Any, subdocument: Any
    ) -> Any:
        if updater is mongomock_collection._inc_updater:
            updater = _typed_inc
        elif updater is mongomock_collection._set_updater:
            updater = fastpaths.set_updater
        return super()._update_document_fields_with_positional_awareness(
            existing_document, v, spec, updater, subdocument
        )

    def _update_document_single_field(self, doc: Any, field_name: str, field_value: Any, updater: Any) -> None:
        if "." not in field_name:  # a top-level field: mongomock's walk down the path has nothing to do
            updater(doc, field_name, field_value)
            return
        super()._update_document_single_field(doc, field_name, field_value, updater)

    def _note_changed(self, doc: Any) -> None:
        """``doc`` was changed in place: file it under its new keys (even if mongomock's == says
        nothing changed, e.g. 1 -> 1.0, and skips ``_ensure_uniques``)."""
        if isinstance(doc, dict) and "_id" in doc:
            hashindex.maps_for(self._store).note_write(hashindex.store_key(doc["_id"]), doc)

    def _report_changed(self, doc: Any) -> None:
        """Tell the change log ``doc`` may have changed in place (even half-way: mongomock applies
        operators one by one and doesn't roll back on e.g. a TypeError)."""
        store = self._store
        if isinstance(store, StandinCollectionStore) and isinstance(doc, dict) and "_id" in doc:
            store.note_changed(hashindex.store_key(doc["_id"]))

    def _apply_update_document(self, existing_document: Any, spec: Any, document: Any, was_insert: Any) -> None:
        self._apply_update_unfiled(existing_document, spec, document, was_insert)
        self._note_changed(existing_document)

    def _apply_update_unfiled(self, existing_document: Any, spec: Any, document: Any, was_insert: Any) -> None:
        """mongomock's ``_apply_update_document``, reported to the change log; filing the document
        in the key maps is left to the caller (``fastpaths.update`` files it once, not twice)."""
        try:
            super()._apply_update_document(existing_document, spec, document, was_insert)
        finally:
            self._report_changed(existing_document)

    def _apply_update_pipeline(self, existing_document: Any, pipeline: Any, session: Any) -> None:
        try:
            super()._apply_update_pipeline(existing_document, pipeline, session)
        finally:
            self._report_changed(existing_document)
        self._note_changed(existing_document)

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        inserted, self._inserting = self._inserting, False
        try:
            unique.ensure_uniques(self, new_data, inserted)
        except pymongo.errors.DuplicateKeyError:
            self._failed_key = hashindex.store_key(new_data.get("_id"))
            raise

    def _update(
        self, spec: Any, document: Any, upsert: Any = False, manipulate: Any = False, multi: Any = False,
        check_keys: Any = False, hint: Any = None, session: Any = None, collation: Any = None, let: Any = None,
        array_filters: Any = None, **kwargs: Any,
    ) -> dict[str, Any]:  # fmt: skip
        self._failed_key = None
        try:
            result: dict[str, Any]
            if fastpaths.takes_fast_update(self, spec, document, hint, session, collation, let, array_filters):
                result = fastpaths.update(self, spec, document, upsert, multi)
            else:
                result = super()._update(
                    spec, document, upsert, manipulate, multi, check_keys,
                    hint, session, collation, let, array_filters, **kwargs,
                )  # fmt: skip
        except pymongo.errors.DuplicateKeyError:
            # mongomock put the document's previous state back: make sure the maps file it
            # under those values (a map built during the check knew only the new ones).
            previous = self._store._documents.get(self._failed_key)
            if previous is not None:
                hashindex.maps_for(self._store).note_write(self._failed_key, previous)
            raise
        except Exception:
            # mongomock applies operators one by one and doesn't roll back on e.g. a TypeError
            # half-way: the document may now hold values the maps never saw.
            hashindex.invalidate(self._store)
            raise
        return result


class StandinDatabase(Database):
    """A mongomock database whose collections are ``StandinCollection``s."""

    def get_collection(self, name: str, *unused_args: Any, **unused_kwargs: Any) -> StandinCollection:
        # Per-call codec/read/write options are a driver-side concern; the stand-in never uses them.
        collection = self._collection_accesses.get(name)
        if collection is None:
            self._ensure_valid_collection_name(name)
            collection = StandinCollection(
                self,
                name=name,
                _db_store=self._store,
                read_preference=self.read_preference,
                codec_options=self._codec_options,
            )
            self._collection_accesses[name] = collection
        assert isinstance(collection, StandinCollection)
        return collection


class StandinClient(MongoClient):
    """The whole server's data: a mongomock client over one ``ServerStore``."""

    def __init__(self, store: ServerStore | None = None) -> None:
        super().__init__(_store=store or StandinServerStore())
        self._server_version = SERVER_VERSION
        self.query_stats = QueryStats()

    @property
    def store(self) -> ServerStore:
        """The raw mongomock store (for snapshots)."""
        return self._store

    @property
    def changes(self) -> ChangeLog | None:
        """The change log of the store (None for a plain mongomock ``ServerStore``)."""
        changes = getattr(self._store, "changes", None)
        return changes if isinstance(changes, ChangeLog) else None

    def get_database(self, name: str | None = None, *unused_args: Any, **unused_kwargs: Any) -> StandinDatabase:
        if name is None:
            raise ValueError("a database name is required")
        database = self._database_accesses.get(name)
        if database is None:
            database = StandinDatabase(self, name, _store=self._store[name], read_preference=self.read_preference)
            self._database_accesses[name] = database
        assert isinstance(database, StandinDatabase)
        return database

    def collection(self, db: str, name: str) -> StandinCollection:
        """Shorthand for ``get_database(db).get_collection(name)``."""
        return self.get_database(db).get_collection(name)

    def drop_database_store(self, name: str) -> None:
        """Drop database ``name`` and forget it, so its collections' memory is released."""
        self._database_accesses.pop(name, None)
        databases: dict[str, Any] = self._store._databases
        database = databases.pop(name, None)
        if database is not None:
            for collection_store in database._collections.values():
                collection_store.drop()
        changes = self.changes
        if changes is not None and changes.active:
            changes.note_drop_database(name)
