"""One client connection: messages in, replies out, in order, each command run as its message arrives.

An ``asyncio.Protocol`` rather than a stream reader/writer pair and a task: a command is executed
straight from ``data_received`` and its reply written there, so a small command costs one trip
through the event loop instead of several task switches and futures (a good part of the
stand-in's CPU per command). The rules are those of a loop over ``read message; reply; drain``:
  * messages are handled one at a time, in order: none is executed while the reply to the one
    before waits for the journal (``j: true``...) or while the client isn't reading its replies
    (the transport paused writing); reading pauses too once enough is buffered meanwhile;
  * a reply that asks for the journal is written once all the command changed is durable
    (``GroupCommitter.when_durable``); if that fails, the connection closes and the server stops;
  * a frame that can't be trusted (bad length, unknown opCode, cut short by the end of the
    stream) is logged and closes the connection; so does any unexpected failure;
  * once the server is stopping, the next message isn't handled: the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from . import wire
from .journal import JournalError

if TYPE_CHECKING:
    from .server import StandinServer

log = logging.getLogger(__name__.rpartition(".")[0] + ".server")  # (the logger the server always used)

# Stop reading from a client whose messages wait (asyncio's stream reader stops at twice its 64 KiB).
_MAX_BUFFERED = 128 * 1024


class Connection(asyncio.Protocol):
    """The server end of one client connection."""

    def __init__(self, server: StandinServer, connection_id: int) -> None:
        self.server = server
        self.id = connection_id
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting = False  # for the journal, before writing a reply
        self._writing_paused = False  # the client doesn't read its replies fast enough
        self._reading_paused = False
        self._eof = False  # the client sent all it will send
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's isn't a subclass of it)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve()

    def eof_received(self) -> bool:
        self._eof = True
        self._serve()
        return True  # _serve closes it, once the messages before the end are answered

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._serve()

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    def _serve(self) -> None:
        """Handle the complete messages buffered, as long as nothing holds the next one back."""
        try:
            while not (self._closed or self._waiting or self._writing_paused):
                if self.server.stopping:
                    self.close()
                    return
                length = 0
                if len(self._buffer) >= wire.HEADER_SIZE:
                    length, request_id, op_code = wire.parse_header(self._buffer)
                if not length or len(self._buffer) < length:
                    if self._eof:
                        self._end_of_stream()
                    break
                body = bytes(self._buffer[wire.HEADER_SIZE : length])
                del self._buffer[:length]
                self._handle(wire.decode_body(request_id, op_code, body))
        except wire.ProtocolError as exc:
            log.warning("connection %d: %s; closing it", self.id, exc)
            self.close()
        except Exception:
            log.exception("connection %d failed", self.id)
            self.close()
        self._flow_control()

    def _end_of_stream(self) -> None:
        if self._buffer:
            where = "header" if len(self._buffer) < wire.HEADER_SIZE else "body"
            log.warning("connection %d: connection closed inside a message %s; closing it", self.id, where)
        self.close()

    def _handle(self, request: wire.Request) -> None:
        response = self.server.respond(request, self.id)
        journal, committer = self.server.journal, self.server.committer
        if journal is not None and journal.broken is not None and not self.server.stopping:
            log.critical("%s; stopping", journal.broken)
            self.server.stop()
        if committer is not None and journal is not None and request.command and wants_journal(request.command):
            # The journal's end now is just after this command's changes (nothing ran since).
            position = journal.end
            if position > journal.durable:
                self._waiting = True
                committer.when_durable(position, lambda error: self._durable(response, error))
                return
        self._reply(response)

    def _durable(self, response: bytes | None, error: JournalError | None) -> None:
        """The journal wait of the last message is over: reply, and go on with the next ones."""
        self._waiting = False
        if error is not None:
            # No acknowledgement without durability: the client sees the connection drop instead.
            log.error("connection %d: %s; closing it", self.id, error)
            self.close()
            self.server.stop()
            return
        self._reply(response)
        self._serve()

    def _reply(self, response: bytes | None) -> None:
        if response is not None and not self._closed and self.transport is not None:
            self.transport.write(response)

    def _flow_control(self) -> None:
        """Stop reading while messages wait and enough is buffered; read again once they don't."""
        if self._closed or self.transport is None:
            return
        held = self._waiting or self._writing_paused
        if held and not self._reading_paused and len(self._buffer) > _MAX_BUFFERED:
            self._reading_paused = True
            self.transport.pause_reading()
        elif not held and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()


def wants_journal(command: dict[str, object]) -> bool:
    """Whether a command's write concern asks for the journal (mongod: ``j``; ``majority`` implies it)."""
    concern = command.get("writeConcern")
    if not isinstance(concern, dict):
        return False
    return bool(concern.get("j")) or concern.get("w") == "majority" or bool(concern.get("fsync"))
