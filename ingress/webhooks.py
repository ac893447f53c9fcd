"""``POST /api/webhooks/stripe``: verify, enqueue, answer. No business rule lives here.

A raw ASGI app, which ``RequestGuard`` calls directly for a POST to the webhook paths: its request
id, access line and catch-all 500 still apply, but the body cap, exception handlers, router and
``Request`` of the other routes are skipped (they cost the ingress as much CPU per delivery as
verifying and enqueuing). What they did for this route is done here: the body cap (413 for a
declared or streamed body over ``WEBHOOK_MAX_BYTES``), ``ApiError`` answered in the API's shape,
a client gone before its body was read answered 400. The routes of the app still name this app
(a GET is the router's 405).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from dramatiq.errors import BrokerConnectionError
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from adapters import metrics
from adapters.async_queue import AsyncEnqueuer
from adapters.queue import event_message
from adapters.settings import Settings
from ingress import body_limit, parse, signature
from ingress.errors import ApiError, api_answer, error
from ingress.request_guard import note
from usecases.handlers import SUBSCRIBED

log = logging.getLogger(__name__)

_BROKER_DOWN = (redis.RedisError, BrokerConnectionError, OSError)

# Built once: every delivery answers one of these (an answer's headers are never changed in place).
RECEIVED = JSONResponse({"received": True})
IGNORED = JSONResponse({"received": True, "ignored": True})
_ENQUEUED, _IGNORED, _DOWN, _INVALID = (
    metrics.WEBHOOKS.labels(outcome) for outcome in ("enqueued", "ignored", "broker_unavailable", "invalid_signature")
)
_ENQUEUE_SECONDS = metrics.WEBHOOK_ENQUEUE_SECONDS


class StripeWebhook:
    """The webhook endpoint as a small ASGI app, so the app hands it its enqueuer and settings."""

    def __init__(
        self, settings: Settings, enqueuer: AsyncEnqueuer, tally: Callable[[str], None] = lambda outcome: None
    ) -> None:
        """``tally(outcome)``: told of each refusal the alerts watch (in memory: no I/O per request)."""
        self.secrets = settings.stripe_webhook_secrets
        self.max_bytes = settings.webhook_max_bytes
        self.enqueuer = enqueuer
        self.tally = tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self.handle(scope, receive)
        except ApiError as refused:  # 413, and the parsers' 400 and 422
            answer = api_answer(refused)
        await answer(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        header = length = None
        for key, value in scope["headers"]:  # lower-case names (ASGI); the first of each, as Starlette's Headers
            if key == b"stripe-signature" and header is None:
                header = value.decode("latin-1")
            elif key == b"content-length" and length is None:
                length = value.decode("latin-1")
        body_limit.check_declared(length, self.max_bytes)  # before anything is read
        try:
            body = await body_limit.read_capped(receive, self.max_bytes)
        except ClientDisconnect:
            return error(400, "malformed_json", "client disconnected before the body was read")
        if not signature.verify(body, header, self.secrets):
            _INVALID.inc()
            self.tally("invalid_signature")
            return error(400, "invalid_signature", "Stripe-Signature does not verify for this body")
        return await self._enqueue(scope, self.parse_event(body))

    @staticmethod
    def parse_event(body: bytes) -> dict[str, Any]:
        """A verified body as a Stripe event: a JSON object with an ``evt_…`` id and a type (else 400/422)."""
        event = parse.json_object(body)
        parse.stripe_id(event.get("id"), "id", "evt")
        if not isinstance(event.get("type"), str) or not parse.EVENT_TYPE.fullmatch(event["type"]):
            raise parse.Invalid("type must be a Stripe event type", "type")
        return event

    async def _enqueue(self, scope: Scope, event: dict[str, Any]) -> Response:
        # The request's access line says what came of the event (one line per delivery, not two).
        ids = {"event_id": event["id"], "event_type": event["type"]}
        if event["type"] not in SUBSCRIBED:
            note(scope, outcome="ignored", **ids)
            _IGNORED.inc()
            return IGNORED
        try:
            # Timed as the histogram's Timer times (failed attempts too), without its object and lookups.
            began = time.perf_counter()
            try:
                # Awaited on the event loop: concurrent deliveries share one Redis round trip, and
                # each is answered only once Redis acknowledged its own message.
                await self.enqueuer.enqueue(event_message(event))
            finally:
                _ENQUEUE_SECONDS.observe(time.perf_counter() - began)
        except _BROKER_DOWN as exc:
            note(scope, outcome="broker_unavailable", **ids)
            log.warning("broker unavailable", extra={"error": repr(exc), **ids})
            _DOWN.inc()
            self.tally("broker_unavailable")
            return error(503, "broker_unavailable", "queue unavailable, retry later", headers={"Retry-After": "5"})
        note(scope, outcome="enqueued", **ids)
        _ENQUEUED.inc()
        return RECEIVED
