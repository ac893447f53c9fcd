"""The command engine: dispatch a command document onto its handler, one command at a time.

Callers rely on ``Engine.execute`` / ``Engine.execute_bytes`` never raising for anything a client
can send: unknown commands get MongoDB's CommandNotFound (59), any failure inside a handler
becomes an ``{ok: 0, errmsg, code}`` reply (code 1 InternalError when unexpected). ``generation``
grows whenever data may have changed, so a snapshotter knows when to write. With a ``journal``,
whatever a command changed is appended to it (``changes.py``) under the lock, before the reply
exists; ``journal.end`` is then the position a reply must wait for to be durable.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import bson

# Handler modules register their commands on import.
from . import admin, catalog, reads, writes  # noqa: F401
from .backend import StandinClient
from .cursors import CursorRegistry
from .errors import COMMAND_NOT_FOUND, ILLEGAL_OPERATION, CommandError, error_reply
from .journal import Journal
from .registry import COMMANDS, WRITE_COMMANDS, Context

log = logging.getLogger(__name__)

# Envelope fields drivers add to every command; they mean nothing to a standalone in-memory server.
IGNORED_FIELDS = frozenset(
    {
        "lsid", "$db", "writeConcern", "readConcern", "$clusterTime",
        "$readPreference", "apiVersion", "apiStrict", "apiDeprecationErrors", "maxTimeMS",
        "comment", "autocommit", "startTransaction", "bypassDocumentValidation", "hint",
        "allowDiskUse", "noCursorTimeout", "allowPartialResults", "$client",
    }
)  # fmt: skip


class Engine:
    """The server's data, cursors and command table behind one lock (mongomock isn't thread-safe)."""

    def __init__(self, client: StandinClient | None = None, journal: Journal | None = None) -> None:
        self.client = client or StandinClient()
        self.cursors = CursorRegistry()
        self.generation = 0
        self.lock = threading.Lock()
        self.journal = journal
        self._changes = self.client.changes if journal is not None else None
        if journal is not None and self._changes is None:
            raise TypeError("journaling needs a client over a StandinServerStore")

    def execute(self, db: str, cmd: dict[str, Any], connection_id: int = 0) -> dict[str, Any]:
        """Run one command; return the reply document (``ok`` always set)."""
        with self.lock:
            return self._execute(db, cmd, connection_id)

    def execute_bytes(self, db: str, cmd: dict[str, Any], connection_id: int = 0) -> bytes:
        """Run one command and BSON-encode its reply, all under the lock.

        Encoding under the lock matters: a reply may reference documents a later command mutates.
        """
        with self.lock:
            reply = self._execute(db, cmd, connection_id)
            try:
                return bson.encode(reply)
            except Exception as exc:  # e.g. a result too large or not encodable
                log.warning("cannot encode the reply to %s: %r", next(iter(cmd), "?"), exc)
                return bson.encode(error_reply(exc))

    def _execute(self, db: str, cmd: dict[str, Any], connection_id: int) -> dict[str, Any]:
        name = next(iter(cmd), "")
        if "txnNumber" in cmd:
            # What a standalone mongod answers: applying the writes now and failing the commit
            # later would be worse than no transactions at all. (Drivers send txnNumber only for
            # transactions here: retryable writes need a replica set.)
            return error_reply(
                CommandError(
                    ILLEGAL_OPERATION, "Transaction numbers are only allowed on a replica set member or mongos"
                )
            )
        handler = COMMANDS.get(name)
        if handler is None:
            return error_reply(CommandError(COMMAND_NOT_FOUND, f"no such command: '{name}'"))
        body = {k: v for k, v in cmd.items() if k not in IGNORED_FIELDS}
        ctx = Context(self.client, self.cursors, db, connection_id)
        changes = self._changes
        if changes is not None:
            changes.begin()
        journal_failure: Exception | None = None
        try:
            reply = handler(ctx, body)
        except Exception as exc:
            reply = error_reply(exc)
            if reply["code"] == 1:
                log.exception("command %s failed unexpectedly", name)
        finally:
            changed = False
            if changes is not None:
                ops = changes.take()
                if ops and self.journal is not None:
                    changed = True
                    try:
                        self.journal.append(name, db, ops)
                    except Exception as exc:
                        journal_failure = exc
            if name in WRITE_COMMANDS or ctx.wrote or changed:
                self.generation += 1
        if journal_failure is not None:
            # Done in memory, but a crash would lose it: not what a client may be told was written.
            log.error("cannot journal what %s changed: %r", name, journal_failure)
            return error_reply(CommandError(1, f"the change was made but could not be journaled: {journal_failure}"))
        reply.setdefault("ok", 1.0)
        return reply
