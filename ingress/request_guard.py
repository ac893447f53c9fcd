"""A request id for every request, and the catch-all for failures nobody expected (CONTRACT §3).

Pure ASGI middleware, outermost of the app's own: it gives each request an id (answered in the
``X-Request-Id`` header, attached to every log line written while the request runs through
``log_context(request_id=…)``), and turns any exception that escapes the routes and their handlers
into ``500 {"error": {"code": "internal_error", "message": "internal error"}}``: no detail in the
body, the traceback in the log next to the request id. Starlette's ``ServerErrorMiddleware`` stays
behind it with the same JSON handler (``errors.unexpected``) for the rare failure outside.
"""

from __future__ import annotations

import logging
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.logs import log_context
from ingress.errors import internal_error

log = logging.getLogger("ingress.errors")

HEADER = "X-Request-Id"


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        with log_context(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if started:  # half an answer is out: nothing to replace it with; let the server close
                    raise
                log.exception(
                    f"unhandled error (request {rid})",
                    extra={"path": scope.get("path", ""), "error": type(exc).__name__},
                )
                await internal_error(rid)(scope, receive, send)
