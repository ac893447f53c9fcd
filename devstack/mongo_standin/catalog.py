"""Collection and index commands: ``create``, ``drop``, ``listCollections``, ``renameCollection``,
``createIndexes``, ``listIndexes``, ``dropIndexes``.

Callers rely on MongoDB's behaviour where drivers depend on it: ``createIndexes`` is idempotent
for an identical definition (a no-op: it doesn't re-check the documents), a new unique partial
index only rejects duplicates among the documents its filter admits, ``listIndexes`` on a missing
collection fails with code 26 (which drivers turn into an empty list), and ``drop`` of a missing
collection succeeds (MongoDB 7).
"""

from __future__ import annotations

from typing import Any

from mongomock.filtering import filter_applies

from . import unique
from .errors import (
    BAD_VALUE,
    INDEX_NOT_FOUND,
    INDEX_OPTIONS_CONFLICT,
    INVALID_OPTIONS,
    NAMESPACE_EXISTS,
    NAMESPACE_NOT_FOUND,
    CommandError,
    not_implemented,
)
from .registry import Context, Reply, batch_size_arg, collection_arg, command, doc_arg

_ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}
# Index options that change nothing here (or that mongomock implements, passed on below).
_IGNORED_INDEX_OPTIONS = {"key", "name", "v", "background", "ns"}
_SUPPORTED_INDEX_OPTIONS = {"unique", "sparse", "expireAfterSeconds", "partialFilterExpression"}
_IGNORED_CREATE_OPTIONS = {"create", "comment"}


def _require_collection(ctx: Context, name: str) -> None:
    if not ctx.exists(name):
        raise CommandError(NAMESPACE_NOT_FOUND, f"ns does not exist: {ctx.namespace(name)}")


@command("create", writes=True)
def create(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    unsupported = sorted(set(cmd) - _IGNORED_CREATE_OPTIONS)
    if unsupported:
        # capped, validator, timeseries, viewOn...: silently ignoring them would change semantics.
        raise not_implemented(f"create option '{unsupported[0]}'")
    if ctx.exists(name):
        raise CommandError(NAMESPACE_EXISTS, f"Collection {ctx.namespace(name)} already exists.")
    ctx.client.store[ctx.db].create_collection(name)
    return {}


@command("drop", writes=True)
def drop(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    if not ctx.exists(name):
        return {}
    indexes = len(ctx.client.store[ctx.db][name].indexes) + 1
    ctx.collection(name).drop()
    return {"nIndexesWas": indexes, "ns": ctx.namespace(name)}


@command("listCollections")
def list_collections(ctx: Context, cmd: dict[str, Any]) -> Reply:
    query = doc_arg(cmd, "filter")
    name_only = bool(cmd.get("nameOnly"))
    entries = []
    for name in sorted(ctx.client.store[ctx.db].list_created_collection_names()):
        entry: dict[str, Any] = {"name": name, "type": "collection"}
        if not name_only:
            entry.update(options={}, info={"readOnly": False}, idIndex=dict(_ID_INDEX))
        if filter_applies(query, entry):
            entries.append(entry)
    namespace = ctx.namespace("$cmd.listCollections")
    return {"cursor": ctx.cursors.open(namespace, entries, batch_size_arg(cmd))}


@command("renameCollection", writes=True)
def rename_collection(ctx: Context, cmd: dict[str, Any]) -> Reply:
    source, target = str(cmd.get("renameCollection", "")), str(cmd.get("to", ""))
    source_db, _, source_name = source.partition(".")
    target_db, _, target_name = target.partition(".")
    if source_db != target_db:
        raise not_implemented("renameCollection across databases")
    if not source_name or not target_name:
        raise CommandError(BAD_VALUE, "renameCollection needs full namespaces: 'db.collection'")
    database = ctx.client.get_database(source_db)
    database.rename_collection(source_name, target_name, dropTarget=bool(cmd.get("dropTarget")))
    return {}


@command("createIndexes", writes=True)
def create_indexes(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    specs = cmd.get("indexes")
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise CommandError(BAD_VALUE, "'indexes' must be a non-empty array of index specifications")
    existed = ctx.exists(name)
    store = ctx.client.store[ctx.db][name]
    before = len(store.indexes) + 1 if existed else 0
    collection = ctx.collection(name)
    for spec in specs:
        key = spec.get("key")
        if not isinstance(key, dict) or not key:
            raise CommandError(BAD_VALUE, "index 'key' must be a non-empty object")
        unsupported = sorted(set(spec) - _IGNORED_INDEX_OPTIONS - _SUPPORTED_INDEX_OPTIONS)
        if unsupported:
            raise not_implemented(f"index option '{unsupported[0]}'")
        key_list = list(key.items())
        index_name = str(spec.get("name") or "_".join(f"{f}_{d}" for f, d in key_list))
        if key_list == [("_id", 1)]:
            continue  # the _id index always exists
        for other_name, other in store.indexes.items():
            if other_name != index_name and list(other["key"]) == key_list:
                raise CommandError(INDEX_OPTIONS_CONFLICT, f"Index already exists with a different name: {other_name}")
        options = {k: spec[k] for k in _SUPPORTED_INDEX_OPTIONS if spec.get(k) is not None}
        existing = store.indexes.get(index_name)
        if existing is not None and list(existing["key"]) != key_list:
            raise CommandError(86, f"An existing index has the same name ({index_name}) but different keys")
        if existing is not None and {k: v for k, v in existing.items() if k != "key"} == _definition(options):
            continue  # mongomock would check every document against a unique index again
        if options.get("unique") and options.get("partialFilterExpression") is not None and existing is None:
            # mongomock's check of the documents already there ignores the partial filter.
            collection.create_index(key_list, name=index_name, **{**options, "unique": False})
            store.indexes[index_name] = {"key": store.indexes[index_name]["key"], **_definition(options)}
            try:
                unique.check_new_index(collection, index_name)
            except Exception:
                store.drop_index(index_name)
                raise
            continue
        try:
            collection.create_index(key_list, name=index_name, **options)
        except Exception as exc:
            if "already exists with different options" in str(exc):
                raise CommandError(
                    INDEX_OPTIONS_CONFLICT, f"An existing index has the same name ({index_name}) but different options"
                ) from exc
            raise
    store.create()
    after = len(store.indexes) + 1
    reply: Reply = {"numIndexesBefore": before, "numIndexesAfter": after}
    reply["createdCollectionAutomatically"] = not existed
    if before == after:
        reply["note"] = "all indexes already exist"
    return reply


def _definition(options: dict[str, Any]) -> dict[str, Any]:
    """The index entry mongomock stores for these options, without its key (same field order)."""
    definition: dict[str, Any] = {k: True for k in ("sparse", "unique") if options.get(k)}
    for k in ("expireAfterSeconds", "partialFilterExpression"):
        if options.get(k) is not None:
            definition[k] = options[k]
    return definition


def _index_docs(ctx: Context, name: str) -> list[dict[str, Any]]:
    return [dict(_ID_INDEX)] + [
        {"v": 2, "key": dict(spec["key"]), "name": index_name, **{k: v for k, v in spec.items() if k != "key"}}
        for index_name, spec in ctx.client.store[ctx.db][name].indexes.items()
    ]


@command("listIndexes")
def list_indexes(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    _require_collection(ctx, name)
    return {"cursor": ctx.cursors.open(ctx.namespace(name), _index_docs(ctx, name), batch_size_arg(cmd))}


@command("dropIndexes", "deleteIndexes", writes=True)
def drop_indexes(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    _require_collection(ctx, name)
    store = ctx.client.store[ctx.db][name]
    count = len(store.indexes) + 1
    target = cmd.get("index")
    if target == "*":
        names = list(store.indexes)
    elif isinstance(target, str):
        names = [target]
    elif isinstance(target, list) and all(isinstance(t, str) for t in target):
        names = list(target)
    elif isinstance(target, dict):
        key_list = list(target.items())
        names = [n for n, spec in store.indexes.items() if list(spec["key"]) == key_list]
        if not names and key_list != [("_id", 1)]:
            raise CommandError(INDEX_NOT_FOUND, f"can't find index with key: {target}")
        names = names or ["_id_"]
    else:
        raise CommandError(BAD_VALUE, "'index' must be a name, a key pattern, a list of names or '*'")
    for index_name in names:
        if index_name == "_id_":
            raise CommandError(INVALID_OPTIONS, "cannot drop _id index")
        if index_name not in store.indexes:
            raise CommandError(INDEX_NOT_FOUND, f"index not found with name [{index_name}]")
    for index_name in names:
        store.drop_index(index_name)
    return {"nIndexesWas": count}
