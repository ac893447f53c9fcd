"""MongoDB error codes and reply shapes, and the mapping from Python exceptions onto them.

Callers rely on two things:
  * ``CommandError`` raised anywhere inside a command becomes ``{ok: 0, errmsg, code, codeName}``
    (plus any extra fields it carries, e.g. ``keyPattern``/``keyValue`` for code 11000);
  * ``error_fields(exc)`` never raises: every exception maps onto *some* MongoDB error, falling
    back to code 1 (InternalError) so a bug in a command can't take a connection down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
import pymongo.errors
from bson.objectid import ObjectId

# The codes we emit, with MongoDB's names (src/mongo/base/error_codes.yml).
CODE_NAMES: dict[int, str] = {
    1: "InternalError",
    2: "BadValue",
    9: "FailedToParse",
    14: "TypeMismatch",
    20: "IllegalOperation",
    22: "InvalidBSON",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    40: "ConflictingUpdateOperators",
    43: "CursorNotFound",
    48: "NamespaceExists",
    52: "DollarPrefixedFieldName",
    59: "CommandNotFound",
    66: "ImmutableField",
    72: "InvalidOptions",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    238: "NotImplemented",
    11000: "DuplicateKey",
    15952: "Location15952",
    40324: "Location40324",
}

INTERNAL_ERROR = 1
BAD_VALUE = 2
FAILED_TO_PARSE = 9
TYPE_MISMATCH = 14
ILLEGAL_OPERATION = 20
INVALID_BSON = 22
NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27
CURSOR_NOT_FOUND = 43
NAMESPACE_EXISTS = 48
COMMAND_NOT_FOUND = 59
DOLLAR_PREFIXED_FIELD_NAME = 52
IMMUTABLE_FIELD = 66
INVALID_OPTIONS = 72
INVALID_NAMESPACE = 73
INDEX_OPTIONS_CONFLICT = 85
NOT_IMPLEMENTED = 238
DUPLICATE_KEY = 11000


class CommandError(Exception):
    """A command failed the way MongoDB fails it: ``code`` plus ``errmsg`` plus ``extra`` fields."""

    def __init__(self, code: int, errmsg: str, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(errmsg)
        self.code = code
        self.errmsg = errmsg
        self.extra: dict[str, Any] = dict(extra or {})


def not_implemented(what: str) -> CommandError:
    """The error for a valid MongoDB feature the stand-in (or mongomock under it) lacks."""
    return CommandError(NOT_IMPLEMENTED, f"mongo stand-in does not implement {what}")


def format_key_value(value: Mapping[str, Any]) -> str:
    """Render ``{a: "x", b: 1}`` roughly as mongod prints it in E11000 messages."""

    def one(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        if isinstance(v, ObjectId):
            return f"ObjectId('{v}')"
        if v is None:
            return "null"
        return repr(v)

    inner = ", ".join(f"{k}: {one(v)}" for k, v in value.items())
    return "{ " + inner + " }" if inner else "{}"


def duplicate_key_error(
    namespace: str, index_name: str, key_pattern: Mapping[str, Any], key_value: Mapping[str, Any]
) -> pymongo.errors.DuplicateKeyError:
    """A pymongo ``DuplicateKeyError`` whose ``details`` carry mongod's keyPattern/keyValue.

    It subclasses what mongomock raises, so mongomock's own rollback handlers still catch it.
    """
    errmsg = (
        f"E11000 duplicate key error collection: {namespace} index: {index_name} dup key: {format_key_value(key_value)}"
    )
    details = {"keyPattern": dict(key_pattern), "keyValue": dict(key_value)}
    return pymongo.errors.DuplicateKeyError(errmsg, DUPLICATE_KEY, details)


def _message(exc: BaseException) -> str:
    # pymongo's OperationFailure appends ", full error: {details}" to its message; mongod's
    # errmsg is the message alone.
    text = str(exc.args[0]) if exc.args else str(exc)
    cut = text.find(", full error: ")
    return text[:cut] if cut >= 0 else text


def _message_code(message: str) -> int:
    """Best MongoDB code for a mongomock error that carries only a message."""
    if "is not a valid operator for the aggregation pipeline" in message:
        return 40324  # Unrecognized pipeline stage name
    if "is not a valid group operator" in message:
        return 15952  # unknown group operator
    if "(immutable) field '_id'" in message:
        return IMMUTABLE_FIELD
    return BAD_VALUE


def error_fields(exc: BaseException) -> dict[str, Any]:
    """``{errmsg, code, codeName, ...extra}`` describing ``exc`` as MongoDB would. Never raises."""
    if isinstance(exc, CommandError):
        code, errmsg, extra = exc.code, exc.errmsg, exc.extra
    elif isinstance(exc, pymongo.errors.DuplicateKeyError):
        code, errmsg = DUPLICATE_KEY, _message(exc)
        details = exc.details or {}
        extra = {k: details[k] for k in ("keyPattern", "keyValue") if k in details}
    elif isinstance(exc, pymongo.errors.OperationFailure):
        # mongomock raises OperationFailure/WriteError mostly without a code.
        errmsg = _message(exc)
        code = exc.code if isinstance(exc.code, int) and exc.code > 0 else _message_code(errmsg)
        extra = {}
    elif isinstance(exc, NotImplementedError):
        errmsg = str(exc) or type(exc).__name__
        code = _message_code(errmsg)
        if code == BAD_VALUE:
            code, errmsg = NOT_IMPLEMENTED, f"mongo stand-in (mongomock) does not implement: {errmsg}"
        extra = {}
    elif isinstance(exc, bson.errors.InvalidDocument):
        code, errmsg, extra = BAD_VALUE, str(exc), {}
    elif isinstance(exc, ValueError):
        # mongomock signals invalid user input (bad projections, "$"-fields, ...) with ValueError.
        code, errmsg, extra = BAD_VALUE, str(exc), {}
    else:
        code, errmsg, extra = INTERNAL_ERROR, f"mongo stand-in internal error: {exc!r}", {}
    return {"errmsg": errmsg, "code": code, "codeName": CODE_NAMES.get(code, "UnknownError"), **extra}


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The full ``{ok: 0, ...}`` command reply for ``exc``."""
    return {"ok": 0.0, **error_fields(exc)}
