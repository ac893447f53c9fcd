"""The TCP server: listening, replies to requests, the periodic snapshot, clean shutdown.

asyncio, with every command run inline on the event-loop thread (under the engine's lock), as its
message arrives on a connection (``connection.py`` serves each, in order): that
serialises commands across all connections, which mongomock needs, and costs nothing extra since
commands are CPU-bound Python anyway. With a journal (``journal.py``: the engine has one when
there is a snapshot), a reply whose write concern asks for it waits for the group commit; other
connections are served meanwhile. Callers rely on:
  * ``await StandinServer(...).serve()`` compacting a journal left by a crash into the snapshot,
    then printing ``mongo stand-in listening on HOST:PORT`` to stderr once it accepts
    connections, and returning after ``stop()`` once connections are closed and the final
    snapshot is written;
  * a reply to a command with ``writeConcern`` ``j: true``, ``w: "majority"`` or ``fsync: true``
    being sent only once all the command changed (and all before it) is fsynced;
  * a client never being disconnected for what it asked (only for bytes that aren't a message,
    or when the journal can't be written, after which the server stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import sys
from pathlib import Path

import bson

from . import forked, wire
from .commands import Engine
from .connection import Connection
from .errors import INVALID_BSON, CommandError, error_fields, error_reply
from .journal import GroupCommitter

log = logging.getLogger(__name__)


#: Seconds between two ``gc.freeze()`` calls (``_freeze_loop``).
FREEZE_INTERVAL = 1.0


async def _freeze_loop() -> None:
    """Keep the cyclic garbage collector off the stored data.

    Documents are acyclic and freed by reference counting, but the collector's full passes scan every
    tracked object, long at a few hundred MB, with every command waiting
    (docs/performance.md#figures-from-code-comments). Each second, what survived is moved to the
    permanent generation (``gc.freeze``, a list splice), so a pass only sees objects younger than
    that. The young cycles (an exception and its traceback) are collected first; a cycle that
    becomes garbage after its freeze is never collected, which the loop's own objects make rare.
    """
    while True:
        await asyncio.sleep(FREEZE_INTERVAL)
        gc.collect(1)
        gc.freeze()


class StandinServer:
    """Serves ``engine`` on ``host:port``; snapshots to ``snapshot_path`` if given."""

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = 27017,
        snapshot_path: Path | None = None,
        snapshot_interval: float = 60.0,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.snapshot_path = snapshot_path
        self.snapshot_interval = snapshot_interval
        self._stopping = asyncio.Event()
        self._connection_ids = itertools.count(1)
        self._reply_ids = itertools.count(1)
        self.connections: set[Connection] = set()  # (connection.py serves each)
        self._saved_generation = engine.generation
        self._snapshot_lock = asyncio.Lock()
        self.journal = engine.journal if snapshot_path is not None else None
        self.committer = GroupCommitter(self.journal) if self.journal is not None else None

    def stop(self) -> None:
        """Ask ``serve`` to shut down (safe from a signal handler on the loop)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def serve(self) -> None:
        if self.journal is not None and self.journal.files_at_start:
            # Compact what a crash left: the snapshot then holds it, and the files go.
            try:
                await self.save_snapshot(force=True)
            except OSError:
                log.exception("cannot compact the journal into %s; it stays", self.snapshot_path)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(self, next(self._connection_ids)), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        print(f"mongo stand-in listening on {self.host}:{self.port}", file=sys.stderr, flush=True)
        snapshots = asyncio.create_task(self._snapshot_loop()) if self.snapshot_path else None
        freezes = asyncio.create_task(_freeze_loop())
        commits = asyncio.create_task(self.committer.run()) if self.committer is not None else None
        try:
            await self._stopping.wait()
        finally:
            try:
                server.close()
                for connection in list(self.connections):
                    connection.close()
                await server.wait_closed()
                freezes.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await freezes
                if snapshots is not None:
                    snapshots.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await snapshots
                if self.snapshot_path is not None:
                    await self.save_snapshot(force=not self.snapshot_path.exists())
            finally:
                if commits is not None and self.committer is not None and self.journal is not None:
                    commits.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await commits
                    await self.committer.flush()  # release whoever still waits
                    self.journal.close()
            log.info("stopped")

    async def save_snapshot(self, force: bool = False) -> bool:
        """Write the snapshot if anything changed since the last one; return whether it wrote."""
        if self.snapshot_path is None:
            return False
        async with self._snapshot_lock:
            if not force and self.engine.generation == self._saved_generation:
                return False
            journal, next_file = self.journal, None
            with self.engine.lock:  # a consistent cut: the fork, between two commands
                generation = self.engine.generation
                if journal is not None:
                    # What comes after this cut goes to a new file (the protocol: journal.py).
                    next_file = journal.number + 1
                    journal.rotate(next_file)
                writer = forked.start(self.engine.client, self.snapshot_path, next_file)
            # Encoding, writing and fsync happen in the child; commands go on meanwhile.
            await asyncio.to_thread(writer.wait)
            self._saved_generation = generation
            if journal is not None and next_file is not None:
                await asyncio.to_thread(journal.remove_before, next_file)
            return True

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval)
            try:
                await self.save_snapshot()
            except OSError:
                log.exception("cannot write the snapshot to %s; will retry", self.snapshot_path)

    def respond(self, request: wire.Request, connection_id: int) -> bytes | None:
        """The framed reply to ``request``, or None when the client asked for none (moreToCome)."""
        query_failure = False
        if request.command is None:
            error = CommandError(INVALID_BSON, f"invalid BSON in request: {request.decode_error}")
            body = bson.encode(error_reply(error))
        elif request.legacy_namespace is not None:
            # Legacy OP_QUERY find: MongoDB 5.1+ rejects it too, with a $err reply.
            error = CommandError(5739101, f"legacy OP_QUERY on {request.legacy_namespace} is not supported; use find")
            body = bson.encode({"$err": error.errmsg, **error_fields(error)})
            query_failure = True
        else:
            body = self.engine.execute_bytes(request.db, request.command, connection_id)
        if request.more_to_come:
            return None
        reply_id = next(self._reply_ids)
        if request.op_code == wire.OP_QUERY:
            return wire.encode_op_reply(body, request.request_id, reply_id, query_failure)
        return wire.encode_op_msg(body, request.request_id, reply_id)
