"""``POST /api/webhooks/stripe``: verify, enqueue, answer. No business rule lives here."""

from __future__ import annotations

import logging
from typing import Any

import redis
from dramatiq.errors import BrokerConnectionError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from adapters import metrics
from adapters.async_queue import AsyncEnqueuer
from adapters.queue import event_message
from adapters.settings import Settings
from ingress import parse, signature
from ingress.errors import error
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


class StripeWebhook:
    """The webhook endpoint as a small object, so the app hands it its enqueuer and settings."""

    def __init__(self, settings: Settings, enqueuer: AsyncEnqueuer) -> None:
        self.secrets = settings.stripe_webhook_secrets
        self.enqueuer = enqueuer

    async def handle(self, request: Request) -> Response:
        try:
            # BodyLimit caps this read at WEBHOOK_MAX_BYTES (413 before the rest is read).
            body = await request.body()
        except ClientDisconnect:
            return error(400, "malformed_json", "client disconnected before the body was read")
        if not signature.verify(body, request.headers.get("stripe-signature"), self.secrets):
            _INVALID.inc()
            return error(400, "invalid_signature", "Stripe-Signature does not verify for this body")
        return await self._enqueue(request, self.parse_event(body))

    @staticmethod
    def parse_event(body: bytes) -> dict[str, Any]:
        """A verified body as a Stripe event: a JSON object with an ``evt_…`` id and a type (else 400/422)."""
        event = parse.json_object(body)
        parse.stripe_id(event.get("id"), "id", "evt")
        if not isinstance(event.get("type"), str) or not parse.EVENT_TYPE.fullmatch(event["type"]):
            raise parse.Invalid("type must be a Stripe event type", "type")
        return event

    async def _enqueue(self, request: Request, event: dict[str, Any]) -> Response:
        # The request's access line says what came of the event (one line per delivery, not two).
        ids = {"event_id": event["id"], "event_type": event["type"]}
        if event["type"] not in SUBSCRIBED:
            note(request, outcome="ignored", **ids)
            _IGNORED.inc()
            return IGNORED
        try:
            # Awaited on the event loop: concurrent deliveries share one Redis round trip, and each
            # is answered only once Redis acknowledged its own message.
            with metrics.WEBHOOK_ENQUEUE_SECONDS.time():
                await self.enqueuer.enqueue(event_message(event))
        except _BROKER_DOWN as exc:
            note(request, outcome="broker_unavailable", **ids)
            log.warning("broker unavailable", extra={"error": repr(exc), **ids})
            _DOWN.inc()
            return error(503, "broker_unavailable", "queue unavailable, retry later", headers={"Retry-After": "5"})
        note(request, outcome="enqueued", **ids)
        _ENQUEUED.inc()
        return RECEIVED
