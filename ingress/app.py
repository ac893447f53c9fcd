"""``create_app(settings)``: the Starlette app, assembled explicitly; nothing runs at import."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from dramatiq.brokers.redis import RedisBroker
from pymongo.database import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from adapters.mongo import connect
from adapters.settings import Settings
from ingress.errors import http_exception
from ingress.health import Health
from ingress.webhooks import StripeWebhook
from workers.broker import build_broker

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, broker: RedisBroker | None = None, db: Database[Any] | None = None) -> Starlette:
    """Build the app; tests may hand in their own broker or database."""
    broker = broker or build_broker(settings)
    db = db if db is not None else connect(settings.mongodb_uri, settings.mongodb_db, timeout_ms=2000)
    webhook = StripeWebhook(settings, broker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        broker.close()
        db.client.close()

    routes = [
        Route("/api/webhooks/stripe", webhook, methods=["POST"]),
        Route("/api/payments/webhooks/stripe", webhook, methods=["POST"]),
        Route("/api/webhooks/health", Health(broker, db), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_exception})
