"""The HTTP/1.1 protocol ``python -m ingress`` serves with: uvicorn's httptools one, held to limits.

Left to itself, uvicorn reads a request head of any size (httptools keeps a header until its end,
copying it as it grows, so a few huge headers take memory far past their size:
docs/performance.md#figures-from-code-comments) and waits for a client for ever: no timer runs
before a first answer is out, and any byte received disarms the keep-alive one, so a head or a body
sent a byte at a time, or never finished, holds a connection and what it buffered.
``GuardedHttpToolsProtocol`` adds, per connection:

- a cap on the head (``MAX_HEADER_BYTES``, request target and header lines): bytes are counted as
  they arrive, so a head over the cap is refused after at most one read past it, never buffered
  whole: ``431 headers_too_large``;
- a head deadline (``HEADER_TIMEOUT_SECONDS``) from the connection's start, or from the first byte
  after an answer (uvicorn's keep-alive timer closes a connection idle before that): ``408
  request_timeout`` if a request had begun, else the connection is closed;
- a body deadline (``BODY_TIMEOUT_SECONDS``) from the end of the head to the end of the body:
  ``408 request_timeout`` unless an answer was already started. Time the app is the one holding
  the body back (reading paused until it takes what it has, or ``Expect: 100-continue`` not yet
  answered) does not count against the client.

Answers written here are in the API's error shape with an ``X-Request-Id``, and close the
connection. ``check_uvicorn_internals`` fails the start if uvicorn no longer has what this uses.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from adapters.logs import pop, push
from adapters.settings import Settings

log = logging.getLogger(__name__)

#: Where a connection is in its current request.
IDLE, HEAD, BODY = 0, 1, 2
#: Bytes of a header line besides its name and value (``: `` and CRLF).
_LINE = 4


@dataclass(frozen=True)
class EdgeLimits:
    max_header_bytes: int = 16_384
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.max_header_bytes, settings.header_timeout_seconds, settings.body_timeout_seconds)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and head and body deadlines (see the module)."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = IDLE
        #: Bytes received since the head began: an upper bound of its size, known before it is parsed.
        self._head_bytes = 0
        #: The parsed head's size so far (target and header lines), exact.
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        #: Cut off: whatever the parser still finds in the last read is ignored.
        self._cut = False

    # The connection -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._cut:
            return
        if self._phase != BODY:
            self._head_bytes += len(data)
            if self._head_timer is None:  # bytes after an answer, even a blank line, start the clock
                self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)
        super().data_received(data)
        if self._cut or self.transport.is_closing():
            return
        if self._phase != BODY and self._head_bytes > self.limits.max_header_bytes:
            self._headers_too_large()
        elif self._phase == BODY and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_expired)

    # The parser's callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._phase, self._head_size = HEAD, 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + _LINE
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_bytes = 0
        if self._cut:
            return
        if self._head_size > self.limits.max_header_bytes:
            self._headers_too_large()
            return
        self._phase = BODY
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._cut:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = IDLE
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if not self._cut:
            super().on_message_complete()

    # Cutting off ----------------------------------------------------------------------------------

    def _headers_too_large(self) -> None:
        cap = self.limits.max_header_bytes
        self._cut_off(self._between_answers(), 431, "headers_too_large", f"request headers are over {cap} bytes")

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._phase == IDLE:
            if self.cycle is None or self.cycle.response_complete:  # nothing asked: close without a word
                self._cut_off(False)
            return  # blank lines while a request is answered: the keep-alive timer follows the answer
        seconds = self.limits.header_timeout
        self._cut_off(
            self._between_answers(), 408, "request_timeout", f"request head not received within {seconds:g} s"
        )

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._phase != BODY:
            return
        cycle = self.cycle
        if self.flow.read_paused or cycle.waiting_for_100_continue:  # the app holds the body back, not the client
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_expired)
            return
        seconds = self.limits.body_timeout
        self._cut_off(
            not cycle.response_started, 408, "request_timeout", f"request body not received within {seconds:g} s"
        )

    def _between_answers(self) -> bool:
        """No answer is due or being written on this connection: one of ours would be the next."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _cut_off(self, answer: bool, status: int = 0, code: str = "", message: str = "") -> None:
        """Stop reading; write ``answer`` (when the connection is between answers) and close."""
        self._cut = True
        self._cancel_timers()
        if self.transport.is_closing():
            return
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and not cycle.response_complete:  # the app's receive() ends, its answer goes nowhere
            cycle.disconnected = True
            cycle.message_event.set()
        if status:
            rid = os.urandom(16).hex()
            fields: dict[str, Any] = {"status": status, "error": code, "outcome": "cut_off"}
            if self._phase == BODY:  # the app has the request too, and logs its own line under its own id
                fields.update(method=self.scope["method"], path=self.scope["path"])
            token = push(request_id=rid)
            try:
                log.info("request cut off", extra=fields)
            finally:
                pop(token)
            if answer:
                self.transport.write(self._error(status, code, message, rid))
        self.transport.close()

    def _error(self, status: int, code: str, message: str, rid: str) -> bytes:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: " + rid.encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        return b"".join(lines)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None


#: What the protocol above uses of uvicorn's: methods it overrides or calls, and the cycle's state.
_PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
)
_CYCLE_STATE = ("response_started", "response_complete", "waiting_for_100_continue", "disconnected", "message_event")
_PROTOCOL_STATE = ("loop", "transport", "cycle", "pipeline", "flow", "server_state")


def check_uvicorn_internals() -> None:
    """Raise ``RuntimeError`` naming what the guarded protocol needs and this uvicorn lacks."""
    missing = [f"HttpToolsProtocol.{name}" for name in _PROTOCOL_METHODS if not hasattr(HttpToolsProtocol, name)]
    # Attributes are assigned in __init__, so their names are among its code's names.
    cycle, protocol = RequestResponseCycle.__init__.__code__.co_names, HttpToolsProtocol.__init__.__code__.co_names
    missing += [f"RequestResponseCycle.{name}" for name in _CYCLE_STATE if name not in cycle]
    missing += [f"HttpToolsProtocol.{name}" for name in _PROTOCOL_STATE if name not in protocol]
    if missing:
        raise RuntimeError(f"uvicorn internals changed: {', '.join(missing)} missing (ingress/server.py)")


def protocol_class(limits: EdgeLimits) -> type[GuardedHttpToolsProtocol]:
    """The guarded protocol bound to ``limits``, for ``uvicorn.run(http=…)``; checks uvicorn first."""
    check_uvicorn_internals()
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
