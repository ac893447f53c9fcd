"""What one command changed, as redo operations: reported by the stores, replayed from the journal.

The journal (``journal.py``) keeps the *effects* of each command, not the command as received:
the engine is not deterministic. An insert or upsert without ``_id`` draws an ObjectId,
``$currentDate`` and ``$$NOW`` read the clock, TTL expiry (run before nearly every read and
write) depends on when a command runs, ``$sample`` is random. Re-running the commands could
give another state than the one clients were told about; writing down what they did cannot.

While ``ChangeLog.active`` (only when the engine has a journal), the stand-in's stores
(``backend``) report every change: a document set (a key new to the store goes last in the
natural order, an existing one is replaced where it is), deleted or changed in place; a
collection created, dropped, or its index list changed; a collection renamed; a database
dropped. ``take`` then reads the final state of whatever was touched into operations:
  * ``{op: "dropDatabase", db}`` and ``{op: "rename", db, from, to}``, in the order they ran;
  * then, per touched collection still in place, ``{op: "collection", db, name, drop?,
    created?, indexes?, put?, append?, delete?}``: ``drop`` (emptied first), ``created`` and
    ``indexes`` (its catalog entry after the command, as in a snapshot), ``put`` (documents
    changed where they are), ``append`` (documents new to the natural order, in that order),
    ``delete`` (the ``_id``s gone).
Callers rely on: ``apply`` turning state S into S' when the operations were taken while the
engine turned S into S' (documents, BSON types and natural order alike); reports being allowed
to over-approximate (a document reported but unchanged is re-put as it is); ``apply`` never
running TTL expiry (the clock decides that afterwards, as for a snapshot).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import hashindex

if TYPE_CHECKING:
    from .backend import StandinClient

Op = dict[str, Any]


def index_entries(store: Any) -> list[dict[str, Any]]:
    """A collection store's index definitions, as snapshots and the journal keep them."""
    return [{"name": name, "spec": spec} for name, spec in store.indexes.items()]


def restore_indexes(store: Any, entries: list[dict[str, Any]]) -> None:
    """Give a collection store exactly the index definitions ``entries`` (no document is checked)."""
    store.indexes.clear()
    store._ttl_indexes.clear()
    for entry in entries:
        spec = dict(entry["spec"])
        # mongomock compares index keys as lists of tuples; BSON gave back lists.
        spec["key"] = [tuple(pair) for pair in spec["key"]]
        store.create_index(entry["name"], spec)


@dataclass
class _Touched:
    """What one command did to one collection store."""

    store: Any  # a backend.StandinCollectionStore
    # Store keys of the documents set, deleted or changed -> whether the last set added the key to
    # the store (so it went last in the natural order). Re-adding a key moves it to the end here too.
    keys: dict[Hashable, bool] = field(default_factory=dict)
    catalog: bool = False
    dropped: bool = False


class ChangeLog:
    """The changes of the command running now, reported by the stores of ``server_store``."""

    def __init__(self, server_store: Any) -> None:
        self.server_store = server_store
        self.active = False
        self._events: list[Op] = []
        self._touched: dict[int, _Touched] = {}

    def begin(self) -> None:
        """Start recording (the engine, before a command)."""
        self._events.clear()
        self._touched.clear()
        self.active = True

    def take(self) -> list[Op]:
        """Stop recording; the operations that redo what changed since ``begin`` (maybe none)."""
        self.active = False
        ops = list(self._events)
        for touched in self._touched.values():
            op = _collection_op(self.server_store, touched)
            if op is not None:
                ops.append(op)
        self._events.clear()
        self._touched.clear()
        return ops

    def _entry(self, store: Any) -> _Touched:
        touched = self._touched.get(id(store))
        if touched is None:
            touched = self._touched[id(store)] = _Touched(store)
        return touched

    def note_set(self, store: Any, key: Hashable, new: bool) -> None:
        keys = self._entry(store).keys
        if new:
            keys.pop(key, None)
            keys[key] = True
        else:
            keys.setdefault(key, False)

    def note_document(self, store: Any, key: Hashable) -> None:
        """Document ``key`` was deleted or changed in place."""
        self._entry(store).keys.setdefault(key, False)

    def note_catalog(self, store: Any) -> None:
        self._entry(store).catalog = True

    def note_drop(self, store: Any) -> None:
        touched = self._entry(store)
        touched.dropped = touched.catalog = True

    def note_rename(self, db: str, name: str, new_name: str) -> None:
        self._events.append({"op": "rename", "db": db, "from": name, "to": new_name})

    def note_drop_database(self, db: str) -> None:
        self._events.append({"op": "dropDatabase", "db": db})


def _collection_op(server_store: Any, touched: _Touched) -> Op | None:
    store = touched.store
    database = server_store._databases.get(store.db_name)
    if database is None or database._collections.get(store.name) is not store:
        return None  # dropped with its database or replaced by a rename: those operations say it all
    op: Op = {"op": "collection", "db": store.db_name, "name": store.name}
    if touched.dropped:
        op["drop"] = True
    if touched.catalog:
        op["created"] = bool(store._is_force_created)
        op["indexes"] = index_entries(store)
    docs = store._documents
    put: list[dict[str, Any]] = []
    append: list[dict[str, Any]] = []
    delete: list[Any] = []
    for key, added in touched.keys.items():
        doc = docs.get(key)
        if doc is None:
            if not touched.dropped:  # after a drop, whatever isn't there now is gone anyway
                delete.append(key)
        elif added:
            append.append(doc)
        else:
            put.append(doc)
    for name, values in (("put", put), ("append", append), ("delete", delete)):
        if values:
            op[name] = values
    return op if len(op) > 3 else None


def apply(client: StandinClient, ops: list[Op]) -> None:
    """Redo recorded operations on ``client``'s data (journal replay). Raises on an unknown operation."""
    server_store = client.store
    for op in ops:
        kind = op["op"]
        if kind == "dropDatabase":
            client.drop_database_store(op["db"])
        elif kind == "rename":
            server_store[op["db"]].rename(op["from"], op["to"])
        elif kind == "collection":
            _apply_collection(server_store[op["db"]][op["name"]], op)
        else:
            raise ValueError(f"unknown journal operation {kind!r}")


def _apply_collection(store: Any, op: Op) -> None:
    if op.get("drop"):
        store.drop()
    if "indexes" in op:
        restore_indexes(store, op["indexes"])
        store._is_force_created = bool(op["created"])
    # The document dict itself, not the store's item methods: those would run TTL expiry.
    docs = store._documents
    for doc_id in op.get("delete", ()):
        docs.pop(hashindex.store_key(doc_id), None)
    for doc in op.get("put", ()):
        docs[hashindex.store_key(doc["_id"])] = doc
    for doc in op.get("append", ()):
        key = hashindex.store_key(doc["_id"])
        docs.pop(key, None)
        docs[key] = doc
    hashindex.invalidate(store)  # its key maps (if any) were built from other documents
