"""A request id, one access line, and the catch-all for failures nobody expected (docs/api.md#conventions).

Pure ASGI middleware, outermost of the app's own (one layer for the three, as each layer wraps
``send`` once more on every request): it gives each request an id (answered in the
``X-Request-Id`` header, attached to every log line written while the request runs through
``log_context(request_id=…)``), writes one JSON access line per request (method, path, status,
duration; no headers, bodies or query; the ids a route noted with ``note``, such as the webhook's
event id and outcome), and turns any exception that escapes the routes and their handlers into
``500 {"error": {"code": "internal_error", "message": "internal error"}}``: no detail in the body,
the traceback in the log next to the request id. Starlette's ``ServerErrorMiddleware`` stays
behind it with the same JSON handler (``errors.unexpected``) for the rare failure outside.

``direct`` maps paths to ASGI apps that take their POSTs straight from here, past the app's other
layers (the Stripe webhook, which does what those layers did for it itself; see ``webhooks``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.logs import info_line, pop, push
from ingress.errors import internal_error

log = logging.getLogger("ingress.errors")
access = logging.getLogger("ingress.access")

HEADER = "X-Request-Id"
_HEADER = HEADER.lower().encode()
#: Where a route leaves fields for its request's access line.
_NOTES = "access_notes"


def note(scope: Scope, **fields: Any) -> None:
    """Add ``fields`` (keys of ``adapters.logs.FIELDS``) to the access line of this request (its ASGI scope)."""
    scope.setdefault("state", {}).setdefault(_NOTES, {}).update(fields)


class RequestGuard:
    def __init__(self, app: ASGIApp, direct: Mapping[str, ASGIApp] | None = None) -> None:
        self.app = app
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        rid = os.urandom(16).hex()  # 128 random bits as uuid4().hex has (less its 6 fixed ones), without the UUID
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = 500  # what the client sees if the app fails before answering
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                # A new list, never the response's own: an answer built once may be sent many times.
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, rid.encode())]}
            await send(message)

        app = self.direct.get(scope["path"], self.app) if scope["method"] == "POST" else self.app
        token = push(request_id=rid)
        try:
            await app(scope, receive, send_with_id)
        except Exception as exc:
            if started:  # half an answer is out: nothing to replace it with; let the server close
                raise
            log.exception(
                f"unhandled error (request {rid})",
                extra={"path": scope.get("path", ""), "error": type(exc).__name__},
            )
            await internal_error(rid)(scope, receive, send)
        finally:
            if access.isEnabledFor(logging.INFO):
                fields = {
                    **state.get(_NOTES, {}),
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                }
                info_line(access, "request", fields)
            pop(token)
