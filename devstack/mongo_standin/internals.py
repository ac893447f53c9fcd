"""The mongomock internals the stand-in relies on, checked at start (mongomock is pinned in pyproject.toml).

``backend``, ``fastpaths``, ``hashindex``, ``unique``, ``lookup``, ``catalog``, ``snapshot``, ``changes`` and
``writes`` subclass mongomock's classes, override their private hooks, read their private attributes
and mirror some of its functions. If a mongomock release renamed one, an override would silently stop
being called or a read would fail mid-command; ``check_mongomock_internals`` makes the stand-in refuse
to start instead, naming what is missing.
"""

# mongomock is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

import mongomock
from mongomock import aggregate, collection, database, filtering, helpers, mongo_client, store

#: The mongomock release the stand-in was written against.
MONGOMOCK_PINNED = "4.3.0"

_Collection = collection.Collection
_CollectionStore = store.CollectionStore


def _changed(what: str) -> RuntimeError:
    return RuntimeError(
        f"mongomock internals changed: {what}; the mongo stand-in was written for mongomock {MONGOMOCK_PINNED}"
        f" (pinned in pyproject.toml; installed: {version('mongomock')})"
    )


def _name(obj: Any) -> str:
    """``Collection._insert`` for a class or function, ``mongomock.helpers`` for a module."""
    return str(getattr(obj, "__qualname__", None) or obj.__name__)


def check_mongomock_internals() -> None:
    """Raise ``RuntimeError`` naming the first missing mongomock attribute or parameter the stand-in uses."""
    attributes: list[tuple[Any, str]] = [  # (owner, names read on it)
        (mongomock, "utcnow"),
        (helpers, "hashdict patch_datetime_awareness_in_document get_value_by_dot PYMONGO_VERSION"),
        (filtering, "filter_applies"),
        (aggregate, "process_pipeline"),
        (collection, "_inc_updater _set_updater _copy_field _validate_data_fields"),
        (store, "_get_min_datetime_from_value"),
        (
            _Collection,
            "_store _iter_documents _insert _ensure_uniques _update _delete _copy_only_fields aggregate"
            " _update_document_fields_with_positional_awareness _apply_update_document _apply_update_pipeline"
            " _expand_dots _discard_operators _update_document_single_field _get_dataset",
        ),
        (database.Database, "_ensure_valid_collection_name"),
        (
            _CollectionStore,
            "_remove_expired_documents _value_meets_expiry documents create_index drop_index create drop"
            " __setitem__ __delitem__",
        ),
        (store.DatabaseStore, "list_created_collection_names rename"),
        (store.ServerStore, "list_created_database_names"),
    ]
    for owner, names in attributes:
        for name in names.split():
            if not hasattr(owner, name):
                raise _changed(f"{_name(owner)} has no {name}")
    # Attributes set in __init__: look at fresh instances (no server involved).
    client = mongo_client.MongoClient()
    db = client.get_database("internals_check")
    instances: list[tuple[Any, tuple[str, ...]]] = [
        (client, ("_store", "_database_accesses", "_server_version")),
        (db, ("_store", "_collection_accesses", "_codec_options")),
        (db.get_collection("internals_check"), ("_db_store",)),
        (client._store, ("_databases",)),
        (db._store, ("_collections",)),
        (_CollectionStore("internals_check"), ("_documents", "_ttl_indexes", "indexes", "_is_force_created", "name")),
    ]
    for obj, fields in instances:
        for name in fields:
            if name not in vars(obj):
                raise _changed(f"{type(obj).__name__} instances have no {name}")
    # Parameters the stand-in passes (by name, or positionally in this order).
    signatures: list[tuple[Any, tuple[str, ...]]] = [
        (mongo_client.MongoClient.__init__, ("_store",)),
        (database.Database.__init__, ("client", "name", "_store", "read_preference")),
        (_Collection.__init__, ("database", "name", "_db_store", "read_preference", "codec_options")),
        (_Collection._insert, ("data", "session", "ordered")),
        (_Collection._update, ("spec", "document", "upsert", "multi")),
        (_Collection._delete, ("filter", "multi")),
        (
            _Collection._update_document_fields_with_positional_awareness,
            ("existing_document", "v", "spec", "updater", "subdocument"),
        ),
        (_Collection._apply_update_document, ("existing_document", "spec", "document", "was_insert")),
        (_Collection._apply_update_pipeline, ("existing_document", "pipeline", "session")),
        (_Collection._copy_only_fields, ("doc", "fields", "container")),
        (_Collection._get_dataset, ("spec", "sort", "fields", "as_class")),
        (_Collection._update_document_single_field, ("doc", "field_name", "field_value", "updater")),
        (_Collection._update, ("hint", "session", "collation", "let", "array_filters")),
        (aggregate.process_pipeline, ("collection", "database", "pipeline", "session")),
        (_CollectionStore._value_meets_expiry, ("val", "expiry", "ttl_now")),
    ]
    for function, expected in signatures:
        parameters = list(inspect.signature(function).parameters)
        if [p for p in parameters if p in expected] != list(expected):
            raise _changed(f"{_name(function)} takes {parameters}, not {list(expected)}")
