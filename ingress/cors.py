"""CORS for the payment API only (``/api/payments/…``), so the MERN app's browser code can call it.

Starlette's ``CORSMiddleware`` with the origins of ``CORS_ORIGINS``, explicit ones only (never
``*``) and no credentials (the API takes a bearer token, never a cookie). It is handed only the
payment routes: the webhooks (the ``/api/payments/webhooks/…`` alias included: Stripe is no
browser), ``/ops`` and ``/metrics`` never answer with CORS headers.

It runs as two layers of the app (``ingress/composition.py``), one of each ``part``: the
``preflights`` layer, inside ``RequestGuard`` so that a preflight gets a request id and an access
line as any request does, answers the preflights; the ``answers`` layer, outermost, puts the CORS
headers on every other answer of the payment routes, so the answers the app's outer layers make
themselves (``BodyLimit``'s 413, ``RequestGuard``'s 500 ``internal_error``) reach the app's code
too: without them the browser hides such an answer, and the MERN app sees a refused call (a
network error) instead of the API's error and its ``X-Request-Id``.

Two changes to Starlette's answers, so an origin that may not use the API is told nothing about
it: a preflight it refuses (another origin, method or header) carries no ``Access-Control-*``
header (Starlette lists the allowed methods and headers to anyone) and stays a 400, in the API's
error shape; and an answer to another origin gets only ``Vary: Origin`` (Starlette would add
``Access-Control-Expose-Headers``). Both override ``CORSMiddleware`` methods, not its documented
API: ``tests/integration/test_cors.py`` fails if an upgrade changes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingress.errors import error

PREFIX = "/api/payments/"
#: Under the prefix, but Stripe's: no CORS.
WEBHOOKS = "/api/payments/webhooks/"
METHODS = ("GET", "POST")
#: What the MERN app sends besides the CORS-safelisted headers.
HEADERS = ("Authorization", "Content-Type")
#: Answer headers the app's code may read: the download's file name, the request id, a 429's wait.
EXPOSED = ("Content-Disposition", "Retry-After", "X-Request-Id")
#: How long a browser may keep a preflight's answer (seconds).
MAX_AGE = 600


class _Cors(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        refused = error(400, "cors_refused", bytes(answer.body).decode())
        refused.headers["Vary"] = answer.headers["Vary"]
        return refused

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if origin is not None and not self.is_allowed_origin(origin):
            # Answered as if no Origin came: Starlette then adds only ``Vary: Origin``.
            request_headers = Headers(raw=[(k, v) for k, v in request_headers.raw if k != b"origin"])
        await super().send(message, send, request_headers)


#: The two layers: ``preflights`` answers preflights (other requests pass), ``answers`` the rest.
PARTS = ("preflights", "answers")


def is_preflight(scope: Scope) -> bool:
    """What ``CORSMiddleware`` answers as a preflight: an OPTIONS naming the method it asks for."""
    return scope["method"] == "OPTIONS" and b"access-control-request-method" in (k for k, _ in scope["headers"])


class PaymentsCors:
    """Sends ``/api/payments/…`` (not its webhooks) through CORS, the preflights or the other requests
    (``part``); everything else straight to the app."""

    def __init__(self, app: ASGIApp, origins: Sequence[str], part: str) -> None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        self.app = app
        self.preflights = part == "preflights"
        self.cors = _Cors(app, allow_origins=tuple(origins), allow_methods=METHODS, allow_headers=HEADERS,
                          expose_headers=EXPOSED, allow_credentials=False, max_age=MAX_AGE)  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        scoped = path.startswith(PREFIX) and not path.startswith(WEBHOOKS) and is_preflight(scope) == self.preflights
        await (self.cors if scoped else self.app)(scope, receive, send)
