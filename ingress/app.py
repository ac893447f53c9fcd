"""``create_app(settings)``: the Starlette app, assembled explicitly; nothing runs at import."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
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
    """Build the app; tests may hand in their own broker or database (then they close them)."""
    owned: list[Callable[[], None]] = []
    if broker is None:
        broker = build_broker(settings)
        owned.append(broker.close)
    if db is None:
        db = connect(settings.mongodb_uri, settings.mongodb_db, timeout_ms=2000)
        owned.append(db.client.close)
    webhook = StripeWebhook(settings, broker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for close in owned:
            close()

    routes = [
        Route("/api/webhooks/stripe", webhook.handle, methods=["POST"]),
        Route("/api/payments/webhooks/stripe", webhook.handle, methods=["POST"]),
        Route("/api/webhooks/health", Health(broker, db).handle, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_exception})
