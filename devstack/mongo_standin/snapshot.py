"""Snapshots: the whole server state in one BSON file, written atomically, read back type-exact.

File layout (a plain stream of BSON documents, readable with ``bson.decode_file_iter``):
  ``{format: "mongo-standin-snapshot", version: 1, journal?: N}``, then for each collection a
  header ``{db, collection, indexes: [{name, spec}], count}`` followed by its ``count`` documents.
``journal: N`` says the snapshot holds every change of the journal files numbered below N
(``journal.py``); a snapshot without it was written with no journal (it is read as N = 0).
Callers rely on: ``dump`` being a pure function of the data (call it under the engine lock);
``write_atomic`` leaving either the old or the new file, never a torn one; ``load`` giving back
the same documents (BSON types included) and index definitions.
"""

# mongomock is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bson

from .backend import StandinClient, StandinServerStore
from .changes import index_entries, restore_indexes
from .hashindex import store_key
from .wire import CODEC_OPTIONS

FORMAT = "mongo-standin-snapshot"
VERSION = 1


class SnapshotError(Exception):
    """The snapshot file exists but can't be read as one."""


def dump(client: StandinClient, journal: int | None = None) -> bytes:
    """Encode every created database, collection, index definition and document; with
    ``journal``, say that journal files numbered below it are in the snapshot."""
    first: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if journal is not None:
        first["journal"] = journal
    parts = [bson.encode(first)]
    databases: dict[str, Any] = client.store._databases
    for db_name, database in sorted(databases.items()):
        for name in sorted(database.list_created_collection_names()):
            collection = database[name]
            docs = list(collection._documents.values())
            header = {"db": db_name, "collection": name, "indexes": index_entries(collection), "count": len(docs)}
            parts.append(bson.encode(header))
            parts.extend(bson.encode(doc) for doc in docs)
    return b"".join(parts)


def load(path: Path) -> StandinClient:
    """A client holding the state saved in ``path``."""
    return load_state(path)[0]


def load_state(path: Path) -> tuple[StandinClient, int]:
    """A client holding the state saved in ``path``, and the number of the first journal file
    the snapshot doesn't hold (0 in a snapshot written without a journal)."""
    store = StandinServerStore()
    with open(path, "rb") as file:
        stream = bson.decode_file_iter(file, CODEC_OPTIONS)
        try:
            header = next(stream, None)
            if not header or header.get("format") != FORMAT or header.get("version") != VERSION:
                raise SnapshotError(f"{path} is not a version-{VERSION} mongo stand-in snapshot")
            journal = int(header.get("journal", 0))
            for entry in stream:
                collection = store[entry["db"]][entry["collection"]]
                collection.create()
                restore_indexes(collection, entry["indexes"])
                for _ in range(entry["count"]):
                    doc = next(stream)
                    collection[store_key(doc["_id"])] = doc
        except (bson.errors.InvalidBSON, KeyError, StopIteration, TypeError, ValueError) as exc:
            raise SnapshotError(f"{path} is damaged: {exc!r}") from exc
    return StandinClient(store), journal


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
