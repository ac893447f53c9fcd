"""Server-side cursors: the batches of ``find``/``aggregate``/``list*`` and ``getMore``/``killCursors``.

A cursor holds the complete result list, computed when the command ran (a point-in-time view;
MongoDB's cursors may see later writes, and no caller should depend on either behaviour).
Callers rely on:
  * ``open`` returning the reply's ``cursor`` sub-document ``{id, ns, firstBatch}``, with id
    ``Int64(0)`` when everything fit in the first batch (nothing is kept then);
  * ``get_more`` returning ``{id, ns, nextBatch}`` or raising ``CommandError`` 43 (CursorNotFound);
  * batches holding already-encoded documents, capped at 16 MiB, and at least one document.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from .errors import CURSOR_NOT_FOUND, CommandError

DEFAULT_FIRST_BATCH = 101
# mongod's cursorTimeoutMillis default: a cursor nobody asked for in 10 minutes is closed.
IDLE_TIMEOUT_SECONDS = 600.0
_MAX_BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class _Cursor:
    namespace: str
    docs: list[dict[str, Any]]
    position: int = 0
    last_used: float = field(default_factory=time.monotonic)


def _batch(cursor: _Cursor, limit: int | None) -> list[RawBSONDocument]:
    """Take up to ``limit`` (None: no count limit) documents off ``cursor``, encoded."""
    batch: list[RawBSONDocument] = []
    size = 0
    while cursor.position < len(cursor.docs) and (limit is None or len(batch) < limit):
        raw = bson.encode(cursor.docs[cursor.position])
        if batch and size + len(raw) > _MAX_BATCH_BYTES:
            break
        batch.append(RawBSONDocument(raw))
        size += len(raw)
        cursor.docs[cursor.position] = {}  # release what was sent
        cursor.position += 1
    return batch


def _exhausted(cursor: _Cursor) -> bool:
    return cursor.position >= len(cursor.docs)


class CursorRegistry:
    """All open cursors of the server, by id."""

    def __init__(self) -> None:
        self._cursors: dict[int, _Cursor] = {}

    def __len__(self) -> int:
        return len(self._cursors)

    def open(
        self,
        namespace: str,
        docs: Iterable[dict[str, Any]],
        batch_size: int | None = None,
        single_batch: bool = False,
    ) -> dict[str, Any]:
        """Start a cursor over ``docs``; return the reply's ``cursor`` document with the first batch."""
        self._expire_idle()
        cursor = _Cursor(namespace, list(docs))
        first = _batch(cursor, DEFAULT_FIRST_BATCH if batch_size is None else batch_size)
        cursor_id = 0
        if not single_batch and not _exhausted(cursor):
            cursor_id = secrets.randbits(62) + 1
            self._cursors[cursor_id] = cursor
        return {"firstBatch": first, "id": Int64(cursor_id), "ns": namespace}

    def get_more(self, cursor_id: int, namespace: str, batch_size: int | None) -> dict[str, Any]:
        """The next batch of cursor ``cursor_id``; the cursor is closed once it is drained."""
        cursor = self._cursors.get(cursor_id)
        if cursor is None or cursor.namespace != namespace:
            raise CommandError(CURSOR_NOT_FOUND, f"cursor id {cursor_id} not found")
        cursor.last_used = time.monotonic()
        batch = _batch(cursor, batch_size or None)
        if _exhausted(cursor):
            del self._cursors[cursor_id]
            cursor_id = 0
        return {"nextBatch": batch, "id": Int64(cursor_id), "ns": namespace}

    def kill(self, cursor_ids: Iterable[int]) -> tuple[list[Int64], list[Int64]]:
        """Close cursors; return (killed, not found) ids."""
        killed: list[Int64] = []
        not_found: list[Int64] = []
        for cursor_id in cursor_ids:
            found = self._cursors.pop(int(cursor_id), None) is not None
            (killed if found else not_found).append(Int64(cursor_id))
        return killed, not_found

    def _expire_idle(self) -> None:
        deadline = time.monotonic() - IDLE_TIMEOUT_SECONDS
        for cursor_id in [cid for cid, c in self._cursors.items() if c.last_used < deadline]:
            del self._cursors[cursor_id]
