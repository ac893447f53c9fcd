"""Write commands: ``insert``, ``update``, ``delete``, ``findAndModify``.

Callers (drivers) rely on MongoDB's reply shapes:
  * batch writes answer ``ok: 1`` with ``n`` (and ``nModified``, ``upserted: [{index, _id}]`` for
    updates) and report per-statement failures in ``writeErrors: [{index, code, errmsg, ...}]``;
    ``ordered: true`` (the default) stops at the first failure, ``ordered: false`` goes on;
  * ``findAndModify`` answers ``{value, lastErrorObject: {n, updatedExisting, upserted?}}`` and
    fails as a whole (e.g. code 11000 with keyPattern/keyValue), which drivers raise directly.
Each statement is atomic because the engine runs one command at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import fastpaths
from .errors import (
    DOLLAR_PREFIXED_FIELD_NAME,
    FAILED_TO_PARSE,
    TYPE_MISMATCH,
    CommandError,
    error_fields,
    not_implemented,
)
from .reads import sort_arg
from .registry import Context, Reply, collection_arg, command, doc_arg

_UPDATE_OPERATORS = {
    "$set", "$unset", "$inc", "$rename", "$setOnInsert", "$min", "$max",
    "$currentDate", "$push", "$pull", "$pullAll", "$addToSet", "$pop",
}  # fmt: skip
_UNSUPPORTED_UPDATE_OPERATORS = {"$mul", "$bit"}  # valid MongoDB, absent from mongomock


def check_update(update: Any, multi: bool = False) -> None:
    """Reject what MongoDB rejects before touching a document (mongomock is laxer or cryptic)."""
    if isinstance(update, list):
        return  # pipeline-style update; mongomock validates the stages
    if not isinstance(update, dict):
        raise CommandError(FAILED_TO_PARSE, "Update argument must be either an object or an array")
    keys = list(update)
    if keys and keys[0].startswith("$"):
        for key in keys:
            if key in _UNSUPPORTED_UPDATE_OPERATORS:
                raise not_implemented(f"the {key} update operator")
            if key not in _UPDATE_OPERATORS:
                raise CommandError(
                    FAILED_TO_PARSE,
                    f"Unknown modifier: {key}. Expected a valid update modifier or pipeline-style "
                    "update specified as an array",
                )
            if not isinstance(update[key], dict):
                raise CommandError(
                    FAILED_TO_PARSE,
                    f"Modifiers operate on fields but we found type {type(update[key]).__name__} instead. "
                    f"For example: {{$mod: {{<field>: ...}}}} not {{{key}: {update[key]!r}}}",
                )
        return
    for key in keys:
        if key.startswith("$"):
            raise CommandError(
                DOLLAR_PREFIXED_FIELD_NAME,
                f"The dollar ($) prefixed field '{key}' in '{key}' is not allowed in the context of an "
                "update's replacement document. Consider using an aggregation pipeline with $replaceWith.",
            )
    if multi:
        raise CommandError(FAILED_TO_PARSE, "multi update is not supported for replacement-style update")


def _statements(cmd: dict[str, Any], field: str) -> list[dict[str, Any]]:
    statements = cmd.get(field)
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise CommandError(TYPE_MISMATCH, f"'{field}' must be an array of objects")
    return statements


def _write_error(index: int, exc: Exception) -> dict[str, Any]:
    fields = error_fields(exc)
    fields.pop("codeName", None)  # mongod's writeErrors carry index, code, errmsg (+ key info)
    return {"index": index, **fields}


def _write_reply(n: int, write_errors: list[dict[str, Any]], **extra: Any) -> Reply:
    reply: Reply = {"n": n, **extra}
    if write_errors:
        reply["writeErrors"] = write_errors
    return reply


def _apply_each(
    cmd: dict[str, Any], field: str, apply: Callable[[dict[str, Any]], Any]
) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """Run ``apply`` on each statement the MongoDB way: ``ordered`` stops at the first error.

    Returns the ``(index, result)`` of each statement that succeeded and the ``writeErrors``.
    """
    ordered = bool(cmd.get("ordered", True))
    done: list[tuple[int, Any]] = []
    write_errors: list[dict[str, Any]] = []
    for index, statement in enumerate(_statements(cmd, field)):
        try:
            done.append((index, apply(statement)))
        except Exception as exc:
            write_errors.append(_write_error(index, exc))
            if ordered:
                break
    return done, write_errors


@command("insert", writes=True)
def insert(ctx: Context, cmd: dict[str, Any]) -> Reply:
    collection = ctx.collection(collection_arg(cmd))
    done, write_errors = _apply_each(cmd, "documents", collection.insert_one)
    return _write_reply(len(done), write_errors)


@command("update", writes=True)
def update(ctx: Context, cmd: dict[str, Any]) -> Reply:
    collection = ctx.collection(collection_arg(cmd))

    def apply(statement: dict[str, Any]) -> Any:
        multi = bool(statement.get("multi"))
        check_update(statement.get("u"), multi)
        extra = {k: statement[k] for k in ("collation",) if statement.get(k)}
        if statement.get("arrayFilters"):
            raise not_implemented("arrayFilters (mongomock lacks them)")
        return collection._update(
            doc_arg(statement, "q"), statement.get("u"), upsert=bool(statement.get("upsert")), multi=multi, **extra
        )

    done, write_errors = _apply_each(cmd, "updates", apply)
    upserted = [{"index": i, "_id": r["upserted"]} for i, r in done if r["upserted"] is not None]
    extra_fields: dict[str, Any] = {"nModified": sum(r["nModified"] for _, r in done)}
    if upserted:
        extra_fields["upserted"] = upserted
    return _write_reply(sum(r["n"] for _, r in done), write_errors, **extra_fields)


@command("delete", writes=True)
def delete(ctx: Context, cmd: dict[str, Any]) -> Reply:
    collection = ctx.collection(collection_arg(cmd))

    def apply(statement: dict[str, Any]) -> Any:
        limit = statement.get("limit", 0)
        if limit not in (0, 1) or isinstance(limit, bool):
            raise CommandError(FAILED_TO_PARSE, f"The limit field in delete objects must be 0 or 1. Got {limit}")
        extra = {k: statement[k] for k in ("collation",) if statement.get(k)}
        return collection._delete(doc_arg(statement, "q"), multi=limit == 0, **extra)

    done, write_errors = _apply_each(cmd, "deletes", apply)
    return _write_reply(sum(r["n"] for _, r in done), write_errors)


def _check_find_and_modify(cmd: dict[str, Any]) -> None:
    remove, update_doc = bool(cmd.get("remove")), cmd.get("update")
    if remove and update_doc is not None:
        raise CommandError(FAILED_TO_PARSE, "Cannot specify both an update and remove=true")
    if remove and cmd.get("new"):
        raise CommandError(
            FAILED_TO_PARSE,
            "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
        )
    if remove and cmd.get("upsert"):
        raise CommandError(FAILED_TO_PARSE, "Cannot specify both upsert=true and remove=true")
    if not remove and update_doc is None:
        raise CommandError(FAILED_TO_PARSE, "Either an update or remove=true must be specified")
    if not remove:
        check_update(update_doc)
    for option in ("arrayFilters", "collation", "let"):
        if cmd.get(option):
            raise not_implemented(f"the '{option}' option of findAndModify")


@command("findAndModify", "findandmodify", writes=True)
def find_and_modify(ctx: Context, cmd: dict[str, Any]) -> Reply:
    collection = ctx.collection(collection_arg(cmd))
    _check_find_and_modify(cmd)
    fields = doc_arg(cmd, "fields") or None
    new, upsert = bool(cmd.get("new")), bool(cmd.get("upsert"))
    query = doc_arg(cmd, "query")
    # The stored documents themselves (find_one would copy each): only the first one is read.
    matches = fastpaths.stored_matches(collection, query, sort_arg(cmd))
    if matches:
        old = matches[0]
        by_id = {"_id": fastpaths.copied(old["_id"])}  # (as find_one's copy holds it)
        # Project (or copy) the pre-image before the write changes it.
        if fields:
            before = collection.find_one(by_id, fields)
        else:
            before = None if new and not cmd.get("remove") else collection._copy_only_fields(old, None, dict)
        if cmd.get("remove"):
            collection._delete(by_id)
            return {"lastErrorObject": {"n": 1}, "value": before}
        collection._update(by_id, cmd["update"])
        value = collection.find_one(by_id, fields) if new else before
        return {"lastErrorObject": {"n": 1, "updatedExisting": True}, "value": value}
    if cmd.get("remove"):
        return {"lastErrorObject": {"n": 0}, "value": None}
    if not upsert:
        return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}
    upserted_id = collection._update(query, cmd["update"], upsert=True)["upserted"]
    value = collection.find_one({"_id": upserted_id}, fields) if new else None
    return {
        "lastErrorObject": {"n": 1, "updatedExisting": False, "upserted": upserted_id},
        "value": value,
    }
