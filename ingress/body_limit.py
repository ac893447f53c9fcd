"""A cap on the request body of every route, before anything reads it (docs/api.md#conventions).

Pure ASGI middleware: a declared ``Content-Length`` over the route's cap is answered at once, and
a body streamed without one (chunked) is cut off as soon as the bytes received pass the cap, so
no route ever holds more than its cap in memory. Both answer ``413 payload_too_large`` in the
API's error shape. Caps are per path: the webhook keeps ``WEBHOOK_MAX_BYTES``; every other route
(the payment API's bodies are a few ids) gets ``DEFAULT_MAX_BYTES``.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingress.errors import ApiError, api_answer

#: Cap for every route without its own (the payment API's JSON bodies).
DEFAULT_MAX_BYTES = 64 * 1024


class PayloadTooLarge(ApiError):
    """Raised from ``receive`` when the streamed body passes the cap; answered 413 wherever caught."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, "payload_too_large", f"body is larger than {cap} bytes")


def check_declared(raw: str | None, cap: int) -> None:
    """Raise ``PayloadTooLarge`` if the declared ``Content-Length`` is over ``cap`` (ASCII digits
    only; anything else counts as undeclared, for the streamed body's own cap to catch)."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        return
    if (int(raw) if len(raw) <= 18 else 10**18) > cap:
        raise PayloadTooLarge(cap)


async def read_capped(receive: Receive, cap: int) -> bytes:
    """The whole request body, as ``Request.body()`` reads it, raising ``PayloadTooLarge`` once it passes ``cap``.

    For a route served outside ``BodyLimit`` (the webhook); ``ClientDisconnect`` if the client went away.
    """
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > cap:
            raise PayloadTooLarge(cap)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BodyLimit:
    def __init__(self, app: ASGIApp, caps: Mapping[str, int], default: int = DEFAULT_MAX_BYTES) -> None:
        self.app = app
        self.caps = dict(caps)
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get(scope["path"], self.default)
        try:
            check_declared(Headers(scope=scope).get("content-length"), cap)
        except PayloadTooLarge as too_large:
            await api_answer(too_large)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise PayloadTooLarge(cap)
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, noting_send)
        except PayloadTooLarge as too_large:  # a route that let it through (the API's handler answers it first)
            if started:
                raise
            await api_answer(too_large)(scope, receive, send)
