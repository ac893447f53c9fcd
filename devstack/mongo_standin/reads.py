"""Read commands: ``find``, ``getMore``, ``killCursors``, ``aggregate``, ``count``, ``distinct``.

Results are computed by mongomock in full and handed to the cursor registry, which batches them
(101 documents first, unless ``batchSize`` says otherwise). Options that only tune performance
(``hint``, ``maxTimeMS``, ``allowDiskUse``, ``comment``...) are ignored; options that would change
the result and that mongomock lacks fail with code 238 instead of being silently dropped.
"""

from __future__ import annotations

from typing import Any

from .errors import FAILED_TO_PARSE, TYPE_MISMATCH, CommandError, not_implemented
from .registry import Context, Reply, batch_size_arg, collection_arg, command, doc_arg, int_arg

_FIND_UNSUPPORTED = ("collation", "min", "max", "returnKey", "showRecordId", "tailable", "awaitData", "let")


def sort_arg(cmd: dict[str, Any]) -> list[tuple[str, Any]] | None:
    """``sort`` as mongomock wants it: an ordered list of (field, direction), or None."""
    sort = doc_arg(cmd, "sort")
    return list(sort.items()) or None


def _reject(cmd: dict[str, Any], options: tuple[str, ...]) -> None:
    for option in options:
        if cmd.get(option):
            raise not_implemented(f"the '{option}' option of '{next(iter(cmd))}'")


@command("find")
def find(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    _reject(cmd, _FIND_UNSUPPORTED)
    projection = cmd.get("projection")
    if projection is not None and not isinstance(projection, dict):
        raise CommandError(FAILED_TO_PARSE, "'projection' must be an object")
    docs = ctx.collection(name).find(
        doc_arg(cmd, "filter"),
        projection or None,
        skip=int_arg(cmd, "skip", 0),
        limit=int_arg(cmd, "limit", 0),
        sort=sort_arg(cmd),
    )
    cursor = ctx.cursors.open(ctx.namespace(name), docs, int_arg(cmd, "batchSize"), bool(cmd.get("singleBatch")))
    return {"cursor": cursor}


@command("getMore")
def get_more(ctx: Context, cmd: dict[str, Any]) -> Reply:
    cursor_id = cmd.get("getMore")
    if isinstance(cursor_id, bool) or not isinstance(cursor_id, int):
        raise CommandError(TYPE_MISMATCH, "getMore: the cursor id must be a long")
    collection = cmd.get("collection")
    if not isinstance(collection, str):
        raise CommandError(TYPE_MISMATCH, "getMore: 'collection' must be a string")
    batch = ctx.cursors.get_more(int(cursor_id), ctx.namespace(collection), int_arg(cmd, "batchSize"))
    return {"cursor": batch}


@command("killCursors")
def kill_cursors(ctx: Context, cmd: dict[str, Any]) -> Reply:
    collection_arg(cmd)
    ids = cmd.get("cursors")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise CommandError(FAILED_TO_PARSE, "killCursors: 'cursors' must be an array of cursor ids")
    killed, not_found = ctx.cursors.kill(ids)
    return {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []}


@command("aggregate")
def aggregate(ctx: Context, cmd: dict[str, Any]) -> Reply:
    if not isinstance(cmd.get("aggregate"), str):
        raise not_implemented("database-level aggregate ({aggregate: 1})")
    name = collection_arg(cmd)
    pipeline = cmd.get("pipeline")
    if not isinstance(pipeline, list) or not all(isinstance(stage, dict) for stage in pipeline):
        raise CommandError(TYPE_MISMATCH, "'pipeline' must be an array of objects")
    if cmd.get("explain"):
        raise not_implemented("aggregate with explain")
    if not isinstance(cmd.get("cursor"), dict):
        raise CommandError(
            FAILED_TO_PARSE, "The 'cursor' option is required, except for aggregate with the explain argument"
        )
    _reject(cmd, ("collation", "let"))
    if any(("$out" in stage or "$merge" in stage) for stage in pipeline):
        ctx.wrote = True
    docs = list(ctx.collection(name).aggregate(pipeline))
    return {"cursor": ctx.cursors.open(ctx.namespace(name), docs, batch_size_arg(cmd))}


@command("count")
def count(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    _reject(cmd, ("collation",))
    limit = cmd.get("limit") or 0
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        raise CommandError(TYPE_MISMATCH, "'limit' must be a number")
    docs = ctx.collection(name).find(doc_arg(cmd, "query"), skip=int_arg(cmd, "skip", 0), limit=abs(int(limit)))
    return {"n": sum(1 for _ in docs)}


@command("distinct")
def distinct(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name = collection_arg(cmd)
    _reject(cmd, ("collation",))
    key = cmd.get("key")
    if not isinstance(key, str):
        raise CommandError(TYPE_MISMATCH, "'key' must be a string")
    values = ctx.collection(name).distinct(key, doc_arg(cmd, "query") or None)
    return {"values": list(values)}
