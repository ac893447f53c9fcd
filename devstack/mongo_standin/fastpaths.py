"""mongomock's per-document helpers and its update/insert, giving the same results for less CPU.

Most of the stand-in's CPU per command went into generic helpers mongomock runs on every document
it touches: ``copy.deepcopy`` (a snapshot of each document it updates), ``copy.copy`` of every
value it returns, ``helpers.patch_datetime_awareness_in_document`` (a fresh copy of every filter,
update and inserted document) and ``packaging.version.parse`` (on every ``$set`` field and every
insert). Each has an equivalent here that handles what documents are made of -- ``dict``,
``OrderedDict`` (upserts store those), ``list`` and immutable scalars -- directly, and hands any
other value to mongomock's own function:
  * ``patched`` is ``helpers.patch_datetime_awareness_in_document``;
  * ``deep_copy`` is ``copy.deepcopy`` of a stored document (no two fields of one share an object:
    every way into the store copies, so deepcopy's memo never matters);
  * ``copied`` is mongomock's ``collection._copy_field(value, dict)``;
  * ``set_updater`` is ``collection._set_updater``;
  * ``find_one`` is ``Collection.find_one`` (filter, projection, sort), without a ``Cursor``;
  * ``update`` is ``Collection._update`` and ``insert`` is ``Collection._insert`` of one document
    (the same steps in the same order, calling the collection's hooks, so overrides still apply;
    ``update`` takes a ``backend.StandinCollection``, whose key maps it keeps current).
Where mongomock makes a new but equal immutable value (a string, number, date, ObjectId...), these
share it: nothing mutates such a value, so no caller can tell the difference.
"""

# mongomock is untyped; this module mirrors its code.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import copy
import datetime
import itertools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import bson
from bson import Binary, Decimal128, Int64, ObjectId, Timestamp
from bson.errors import InvalidDocument
from mongomock import collection as mongomock_collection
from mongomock import helpers
from packaging import version
from pymongo.errors import DuplicateKeyError, WriteError

# Values that are never mutated in place, so sharing one is as good as mongomock's copy of it.
_SHARED: frozenset[type] = frozenset(
    {str, int, float, bool, type(None), bytes, ObjectId, Int64, Timestamp, Decimal128, Binary, datetime.datetime}
)
# Of those, the ones the datetime patching leaves as they are (Timestamp(0, 0) becomes "now").
_UNPATCHED = _SHARED - {Timestamp, datetime.datetime}
# What mongomock computes from the pymongo version on every call (pymongo is pinned in pyproject.toml).
# (bson is there, so mongomock's ``if BSON:`` validations always run.)
_CHECK_KEYS: bool = version.parse("3.6") > helpers.PYMONGO_VERSION


def _rebuilder(keep: frozenset[type], ordered: type, other: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A function that rebuilds a value: values of the types in ``keep`` as they are, dicts and lists
    anew (an ``OrderedDict`` as an ``ordered``), anything else through ``other``. It tests each
    member's type before recursing into it: most values are scalars, and a call each was most of
    the cost."""

    def rebuild(value: Any) -> Any:
        kind = type(value)
        if kind in keep:
            return value
        if kind is dict:
            return {k: v if type(v) in keep else rebuild(v) for k, v in value.items()}
        if kind is list:
            return [v if type(v) in keep else rebuild(v) for v in value]
        if kind is OrderedDict:
            return ordered((k, v if type(v) in keep else rebuild(v)) for k, v in value.items())
        return other(value)

    return rebuild


def _patched_other(value: Any) -> Any:
    if type(value) is datetime.datetime and value.tzinfo is None and value.microsecond % 1000 == 0:
        return value  # mongomock would make an equal copy
    return helpers.patch_datetime_awareness_in_document(value)


#: ``helpers.patch_datetime_awareness_in_document``: a copy with naive-UTC, millisecond dates.
patched = _rebuilder(_UNPATCHED, OrderedDict, _patched_other)
#: ``copy.deepcopy(value)`` for a stored document or a part of one.
deep_copy = _rebuilder(_SHARED, OrderedDict, copy.deepcopy)
#: mongomock's ``_copy_field(value, dict)``: what ``find`` returns for a stored document.
copied = _rebuilder(_SHARED, dict, lambda value: mongomock_collection._copy_field(value, dict))


def set_updater(doc: Any, field_name: str, value: Any) -> None:
    """mongomock's ``_set_updater`` (the ``$set`` of one field), without a version parse per call."""
    if isinstance(value, (tuple, list)):
        value = deep_copy(value)
    if not _CHECK_KEYS and ("\0" in field_name or field_name.startswith("$")):
        raise InvalidDocument(
            f"Field name cannot contain the null character and top-level field name "
            f'cannot start with "$" (found: {field_name})'
        )
    if not _encodable(value):
        bson.encode({field_name: value}, check_keys=_CHECK_KEYS)  # BSON.encode's check, minus its bytes copy
    if isinstance(doc, dict):
        doc[field_name] = value
    if isinstance(doc, list):
        field_index = int(field_name)
        if field_index < 0:
            raise WriteError("Negative index provided")
        len_diff = field_index - (len(doc) - 1)
        if len_diff > 0:
            doc += [None] * len_diff
        doc[field_index] = value


_ENCODABLE = frozenset({bool, float, type(None), ObjectId, datetime.datetime})


def _encodable(value: Any) -> bool:
    """Whether ``bson.encode`` surely takes ``value`` (only the commonest types are looked at)."""
    kind = type(value)
    if kind is str:
        return bool(value.isascii())  # (UTF-8 can't encode a lone surrogate)
    if kind is int or kind is Int64:
        return bool(-(2**63) <= value < 2**63)
    return kind in _ENCODABLE


# A projection that makes ``_get_dataset`` yield the stored documents themselves (``backend``'s
# ``_copy_only_fields`` knows it), for a caller that only reads them.
STORED: Any = object()


def find_one(collection: Any, filter: dict[str, Any], projection: Any, sort: Any) -> Any:
    """``collection.find_one(filter, projection, sort=sort)`` (no tz-aware codec): what mongomock's
    ``Cursor`` gives -- every match evaluated, sorted and copied, the first returned -- without one."""
    found = list(collection._get_dataset(patched(filter), sort, projection, dict))
    return found[0] if found else None


def stored_matches(collection: Any, filter: dict[str, Any], sort: Any) -> list[dict[str, Any]]:
    """The stored documents ``find(filter, sort=sort)`` returns copies of, in its order (read-only!)."""
    return list(collection._get_dataset(patched(filter), sort, STORED, dict))


def takes_fast_update(collection: Any, spec: Any, document: Any, *options: Any) -> bool:
    """Whether ``update`` covers a call of ``_update`` (its ``options``: hint, session, collation, let,
    array_filters); otherwise mongomock's ``_update`` runs, and raises as it does."""
    return type(spec) is dict and type(document) is dict and not any(options) and _from_version_5(collection)


_VERSION_5_OR_LATER: dict[str, bool] = {}  # server version -> mongomock's test in _update, once


def _from_version_5(collection: Any) -> bool:
    client = collection.database.client
    known = _VERSION_5_OR_LATER.get(client._server_version)
    if known is None:
        known = _VERSION_5_OR_LATER[client._server_version] = client.server_info()["versionArray"] >= [5]
    return known


def update(collection: Any, spec: dict[str, Any], document: dict[str, Any], upsert: Any, multi: Any) -> dict[str, Any]:
    """mongomock's ``Collection._update`` with an update document (see ``takes_fast_update``)."""
    spec = patched(spec)
    document = patched(document)
    updated_existing = False
    upserted_id = None
    num_updated = 0
    num_matched = 0
    original: Any = None
    for existing_document in itertools.chain(collection._iter_documents(spec), [None]):
        was_insert = False
        if existing_document is None:  # the sentinel: upsert, if nothing matched
            if not upsert or num_matched:
                continue
            if spec.get("_id") is not None:
                _id = spec["_id"]
            elif document.get("_id") is not None:
                _id = document["_id"]
            else:
                _id = ObjectId()
            to_insert = collection._expand_dots(dict(spec, _id=_id))
            existing_document, _ = collection._discard_operators(to_insert)
            was_insert = True
        else:
            original = deep_copy(existing_document)
            updated_existing = True
        num_matched += 1
        # The stand-in's hooks: the document is filed in the key maps once, by whichever step
        # below runs (_insert, _ensure_uniques, or _note_changed when == sees no change).
        collection._apply_update_unfiled(existing_document, spec, document, was_insert)
        if was_insert:
            upserted_id = collection._insert(existing_document)
            num_updated += 1
        elif existing_document != original:
            if original.get("_id") != existing_document.get("_id"):
                collection._store[original["_id"]] = original  # roll back
                raise WriteError(
                    "After applying the update, the (immutable) field '_id' was found to have "
                    "been altered to _id: {}".format(existing_document.get("_id"))
                )
            try:
                collection._ensure_uniques(existing_document)
                num_updated += 1
            except DuplicateKeyError:
                collection._store[original["_id"]] = original  # roll back
                raise
        else:
            collection._note_changed(existing_document)  # == misses changes of type, e.g. 1 -> 1.0
        if not multi:
            break
    return {
        "connectionId": collection.database.client._id,
        "err": None,
        "n": num_matched,
        "nModified": num_updated if updated_existing else 0,
        "ok": 1,
        "upserted": upserted_id,
        "updatedExisting": updated_existing,
    }


def insert(collection: Any, data: Any) -> Any:
    """mongomock's ``Collection._insert`` of one document (a mapping, no session); returns its ``_id``."""
    if not all(isinstance(k, str) for k in data):
        raise ValueError("Document keys must be strings")
    if not _CHECK_KEYS:
        mongomock_collection._validate_data_fields(data)
    bson.encode(data, check_keys=_CHECK_KEYS)
    if "_id" not in data:
        data["_id"] = ObjectId()  # as pymongo does, in the caller's dict
    object_id = data["_id"]
    if isinstance(object_id, dict):
        object_id = helpers.hashdict(object_id)
    store = collection._store
    if object_id in store:
        raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
    data = patched(data)
    store[object_id] = data
    try:
        collection._ensure_uniques(data)
    except DuplicateKeyError:
        del store[object_id]  # roll back
        raise
    return data["_id"]
