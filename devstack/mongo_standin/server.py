"""The TCP server: connections, request/reply framing, the periodic snapshot, clean shutdown.

asyncio, with every command run inline on the event-loop thread (under the engine's lock): that
serialises commands across all connections, which mongomock needs, and costs nothing extra since
commands are CPU-bound Python anyway. Callers rely on:
  * ``await StandinServer(...).serve()`` printing ``mongo stand-in listening on HOST:PORT`` to
    stderr once it accepts connections, and returning after ``stop()`` once connections are
    closed and the final snapshot is written;
  * a client never being disconnected for what it asked (only for bytes that aren't a message).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from pathlib import Path

import bson

from . import snapshot, wire
from .commands import Engine
from .errors import INVALID_BSON, CommandError, error_fields, error_reply

log = logging.getLogger(__name__)


class StandinServer:
    """Serves ``engine`` on ``host:port``; snapshots to ``snapshot_path`` if given."""

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = 27017,
        snapshot_path: Path | None = None,
        snapshot_interval: float = 5.0,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.snapshot_path = snapshot_path
        self.snapshot_interval = snapshot_interval
        self._stopping = asyncio.Event()
        self._connection_ids = itertools.count(1)
        self._reply_ids = itertools.count(1)
        self._writers: set[asyncio.StreamWriter] = set()
        self._saved_generation = engine.generation
        self._snapshot_lock = asyncio.Lock()

    def stop(self) -> None:
        """Ask ``serve`` to shut down (safe from a signal handler on the loop)."""
        self._stopping.set()

    async def serve(self) -> None:
        server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        print(f"mongo stand-in listening on {self.host}:{self.port}", file=sys.stderr, flush=True)
        snapshots = asyncio.create_task(self._snapshot_loop()) if self.snapshot_path else None
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()
            if snapshots is not None:
                snapshots.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await snapshots
            if self.snapshot_path is not None:
                await self.save_snapshot(force=not self.snapshot_path.exists())
            log.info("stopped")

    async def save_snapshot(self, force: bool = False) -> bool:
        """Write the snapshot if anything changed since the last one; return whether it wrote."""
        if self.snapshot_path is None:
            return False
        async with self._snapshot_lock:
            if not force and self.engine.generation == self._saved_generation:
                return False
            with self.engine.lock:  # a consistent cut: no command runs while encoding
                generation = self.engine.generation
                data = snapshot.dump(self.engine.client)
            # The slow part -- write and fsync -- happens off the loop; commands go on meanwhile.
            await asyncio.to_thread(snapshot.write_atomic, self.snapshot_path, data)
            self._saved_generation = generation
            return True

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval)
            try:
                await self.save_snapshot()
            except OSError:
                log.exception("cannot write the snapshot to %s; will retry", self.snapshot_path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection_id = next(self._connection_ids)
        self._writers.add(writer)
        try:
            while not self._stopping.is_set():
                request = await wire.read_message(reader)
                if request is None:
                    break
                response = self._respond(request, connection_id)
                if response is not None:
                    writer.write(response)
                    await writer.drain()
        except wire.ProtocolError as exc:
            log.warning("connection %d: %s; closing it", connection_id, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            log.exception("connection %d failed", connection_id)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, request: wire.Request, connection_id: int) -> bytes | None:
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
