"""mongomock, adapted to serve as the stand-in's storage engine.

Subclasses, never patches: mongomock stays untouched for anyone else in the process. Callers rely
on ``StandinClient`` behaving like ``mongomock.MongoClient`` (same store, same semantics) with
these differences:
  * it reports server version 7.0.0 (mongomock gates some behaviour on the version);
  * a lookup by plain equality on ``_id``, or on the field of a single-field unique index, reads
    the one document instead of scanning the collection;
  * unique indexes are checked through hash indexes (``unique.py``), and every duplicate key --
    on ``_id`` too -- raises a ``DuplicateKeyError`` carrying index name, keyPattern and keyValue;
  * ``$inc`` keeps a 64-bit integer 64-bit, as MongoDB does;
  * ``drop_database_store`` forgets a database entirely (mongomock keeps empty shells forever).
"""

# mongomock is untyped; calling into it from here is the point of this module.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any

import pymongo.errors
from bson.int64 import Int64
from bson.objectid import ObjectId
from mongomock import collection as mongomock_collection
from mongomock.collection import Collection
from mongomock.database import Database
from mongomock.filtering import filter_applies
from mongomock.mongo_client import MongoClient
from mongomock.store import ServerStore

from . import unique
from .errors import duplicate_key_error

SERVER_VERSION = "7.0.0"

# _id value types for which dict lookup finds exactly what mongomock's == would (bool excluded:
# True == 1 in Python, not in MongoDB; float excluded: NaN).
_FAST_ID_TYPES = frozenset({ObjectId, str, int, Int64, datetime.datetime})


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


class StandinCollection(Collection):
    """A mongomock collection with an ``_id`` fast path and detailed duplicate-key errors."""

    def _iter_documents(self, filter: Any) -> Iterator[dict[str, Any]]:
        if isinstance(filter, dict) and type(filter.get("_id")) in _FAST_ID_TYPES:
            try:
                doc = self._store[filter["_id"]]
            except KeyError:
                doc = None
            if doc is None:
                filter_applies(filter, {})  # still reject an invalid filter, as mongomock does
                return iter(())
            return iter([doc] if filter_applies(filter, doc) else [])
        if isinstance(filter, dict) and filter:
            found = unique.find_by_unique_key(self, filter)
            if found is not None:
                if not found:
                    filter_applies(filter, {})
                return iter(found)
        result: Iterator[dict[str, Any]] = super()._iter_documents(filter)
        return result

    def _insert(self, data: Any, session: Any = None, ordered: bool = True) -> Any:
        if isinstance(data, Mapping) and "_id" in data and unique.store_key(data["_id"]) in self._store:
            namespace = f"{self.database.name}.{self.name}"
            raise duplicate_key_error(namespace, "_id_", {"_id": 1}, {"_id": data["_id"]})
        return super()._insert(data, session, ordered)

    def _update_document_fields_with_positional_awareness(
        self, existing_document: Any, v: Any, spec: Any, updater: Any, subdocument: Any
    ) -> Any:
        if updater is mongomock_collection._inc_updater:
            updater = _typed_inc
        return super()._update_document_fields_with_positional_awareness(
            existing_document, v, spec, updater, subdocument
        )

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        unique.ensure_uniques(self, new_data)

    def _update(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = super()._update(*args, **kwargs)
        except pymongo.errors.DuplicateKeyError:
            raise  # mongomock rolled the document back to values the hash index still holds
        except Exception:
            # mongomock applies operators one by one and doesn't roll back on e.g. a TypeError
            # half-way: the document may now hold values the hash indexes never saw.
            unique.invalidate(self._store)
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
        super().__init__(_store=store or ServerStore())
        self._server_version = SERVER_VERSION

    @property
    def store(self) -> ServerStore:
        """The raw mongomock store (for snapshots)."""
        return self._store

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
