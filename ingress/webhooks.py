"""``POST /api/webhooks/stripe``: verify, enqueue, answer. No business rule lives here."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from adapters.logs import log_context
from adapters.queue import event_message
from adapters.settings import Settings
from ingress import signature
from ingress.errors import error
from usecases.handlers import SUBSCRIBED

log = logging.getLogger(__name__)

_BROKER_DOWN = (redis.RedisError, BrokerConnectionError, OSError)


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class StripeWebhook:
    """The webhook endpoint as a small object, so the app hands it its broker and settings."""

    def __init__(self, settings: Settings, broker: RedisBroker) -> None:
        self.secrets = settings.stripe_webhook_secrets
        self.max_bytes = settings.webhook_max_bytes
        self.broker = broker

    async def handle(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.max_bytes)
        except TooLarge:
            return error(413, "payload_too_large", f"body is larger than {self.max_bytes} bytes")
        except ClientDisconnect:
            return error(400, "malformed_json", "client disconnected before the body was read")
        if not signature.verify(body, request.headers.get("stripe-signature"), self.secrets):
            return error(400, "invalid_signature", "Stripe-Signature does not verify for this body")
        try:
            event = json.loads(body)
        except ValueError:
            return error(400, "malformed_json", "body is not valid JSON")
        if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)):
            return error(422, "validation_error", "body is not a Stripe event (id and type required)")
        with log_context(event_id=event["id"], event_type=event["type"]):
            return await self._enqueue(event)

    async def _enqueue(self, event: dict[str, Any]) -> Response:
        if event["type"] not in SUBSCRIBED:
            log.info("event type not handled", extra={"outcome": "ignored"})
            return JSONResponse({"received": True, "ignored": True})
        try:
            # The Redis client blocks; a thread keeps the event loop serving other deliveries.
            await run_in_threadpool(self.broker.enqueue, event_message(event))
        except _BROKER_DOWN as exc:
            log.warning("broker unavailable", extra={"error": repr(exc)})
            return error(503, "broker_unavailable", "queue unavailable, retry later", headers={"Retry-After": "5"})
        log.info("event enqueued", extra={"outcome": "enqueued"})
        return JSONResponse({"received": True})
