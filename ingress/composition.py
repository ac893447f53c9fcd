"""The web process's composition root: ``create_app(settings)`` builds its whole object graph.

Settings → MongoDB and the broker → the adapters → the use cases' dependencies → the routes →
the Starlette app. This is the one place the ingress picks concrete adapters; the route modules
only take what they are handed. Nothing runs at import: ``python -m ingress`` and the tests call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from pymongo.database import Database
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from adapters.async_queue import build_enqueuer
from adapters.checkout import MongoCatalog, MongoCheckout
from adapters.deps import build_deps, build_ops
from adapters.exports import MongoPaymentExports
from adapters.indexes import ensure_all_indexes
from adapters.ingress_counts import FLUSH_SECONDS, IngressCounts
from adapters.metrics import SuccessGauges
from adapters.mongo import connect
from adapters.ops_sessions import MongoOpsSessions
from adapters.queue import Broker, build_broker
from adapters.queue_admin import RedisQueueAdmin
from adapters.queue_health import QueueHealth
from adapters.reads import MongoPaymentReads, MongoUsers
from adapters.settings import Settings
from adapters.statistics import MongoStatistics
from adapters.story import MongoStory
from adapters.stripe_gateway import StripeGateway, build_client
from adapters.success_metrics import MongoMetricSnapshots, MongoSuccessFacts
from domain.errors import RequestRefused
from ingress import errors
from ingress.auth import Unauthorized
from ingress.body_limit import BodyLimit
from ingress.cors import PaymentsCors
from ingress.dashboard import Dashboard
from ingress.exports import ExportRoutes
from ingress.health import Health
from ingress.login_throttle import LoginThrottle
from ingress.metrics import MetricsRoute
from ingress.openapi import openapi
from ingress.ops import OpsRoutes
from ingress.payments import PaymentRoutes
from ingress.ratelimit import RateLimiter
from ingress.request_guard import RequestGuard
from ingress.story import story_routes
from ingress.success_metrics import SuccessMetricsRoutes
from ingress.webhooks import StripeWebhook
from usecases.ports import CheckoutDeps
from usecases.story import StoryDeps
from usecases.success_metrics import CachedMeasure

log = logging.getLogger(__name__)


async def _flush_every(counts: IngressCounts, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        await run_in_threadpool(counts.flush)  # never raises: a failed flush keeps its counts


def create_app(
    settings: Settings,
    *,
    broker: Broker | None = None,
    db: Database[Any] | None = None,
    stripe_gateway: StripeGateway | None = None,
) -> Starlette:
    """Build the app; tests may hand in their own broker, database or Stripe (then they close them)."""
    owned: list[Callable[[], None]] = []
    if broker is None:
        broker = build_broker(settings)
        owned.append(broker.close)
    if db is None:
        db = connect(settings.mongodb_uri, settings.mongodb_db, timeout_ms=2000)
        owned.append(db.client.close)
    gateway = stripe_gateway or StripeGateway(build_client(settings))
    deps = build_deps(settings, db, broker, gateway)
    # The webhook enqueues on the event loop (batched, no thread); the other routes keep the blocking broker.
    enqueuer = build_enqueuer(settings, broker)
    counts = IngressCounts(db)  # the refusals the workers' alert evaluator reads
    webhook = StripeWebhook(settings, enqueuer, counts.add)
    success_metrics = CachedMeasure(MongoSuccessFacts(db), MongoMetricSnapshots(db), f"ingress-{uuid.uuid4()}")
    metrics = MetricsRoute(
        settings.metrics_token,
        RedisQueueAdmin(broker).depths,
        SuccessGauges(success_metrics.get),
        QueueHealth(broker).collector(),
    )
    payments = PaymentRoutes(
        jwt_secret=settings.jwt_secret,
        deps=CheckoutDeps(catalog=MongoCatalog(db), checkout=MongoCheckout(db), intents=gateway, core=deps),
        reads=MongoPaymentReads(db),
        limiter=RateLimiter(broker.client, settings.rate_limit_per_minute),
        find_user=MongoUsers(db).find,
        refund_window=timedelta(days=settings.refund_window_days),
        stats=MongoStatistics(db),
        refunds_per_user=settings.refund_rate_limit_per_minute,
        refunds_per_payment=settings.refund_payment_rate_limit_per_minute,
        jwt_max_age_days=settings.jwt_max_age_days,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(ensure_all_indexes, db)
        except Exception as exc:  # webhooks need only Redis: start anyway, the worker creates them too
            log.error("indexes not ensured at start-up", extra={"error": repr(exc)})
        flusher = asyncio.create_task(_flush_every(counts, FLUSH_SECONDS))
        yield
        flusher.cancel()
        await run_in_threadpool(counts.flush)  # what the last seconds counted
        await run_in_threadpool(ops.background.stop)  # replay jobs stop between two messages
        await enqueuer.aclose()
        for close in owned:
            close()

    exports = ExportRoutes(payments, MongoPaymentExports(db))
    ops = OpsRoutes(settings.ops_token, build_ops(settings, db, broker), deps, MongoPaymentReads(db))
    dashboard = Dashboard(ops, db.stripe_events, MongoOpsSessions(db), LoginThrottle(broker.client))
    success = SuccessMetricsRoutes(ops, dashboard, success_metrics)
    webhook_paths = ("/api/webhooks/stripe", "/api/payments/webhooks/stripe")
    routes = [
        # Listed for the router's 405 and the reader; RequestGuard hands their POSTs to the webhook directly.
        *(Route(path, webhook, methods=["POST"]) for path in webhook_paths),
        Route("/api/webhooks/health", Health(broker, db).handle, methods=["GET"]),
        Route("/api/payments/create-intent", payments.create_intent, methods=["POST"]),
        Route("/api/payments/confirm-payment", payments.confirm_payment, methods=["POST"]),
        Route("/api/payments/history/customer", payments.history, methods=["GET"]),
        # Before /api/payments/{payment_id}, which would take "export" for an id (a 422).
        Route("/api/payments/history/customer/export", exports.customer, methods=["GET"]),
        Route("/api/payments/export", exports.admin, methods=["GET"]),
        Route("/api/payments/specialist/statistics", payments.statistics, methods=["GET"]),
        Route("/api/payments/{payment_id}", payments.get_payment, methods=["GET"]),
        Route("/api/payments/{payment_id}/refund", payments.refund, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics.handle, methods=["GET"]),
        Route("/ops/api/queues", ops.queues, methods=["GET"]),
        Route("/ops/api/failures", ops.failures, methods=["GET"]),
        Route("/ops/api/failures/replay", ops.replay, methods=["POST"]),
        Route("/ops/api/failures/purge", ops.purge, methods=["POST"]),
        Route("/ops/api/failures/{failure_id}", ops.failure, methods=["GET"]),
        Route("/ops/api/events/{event_id}/replay", ops.replay_event, methods=["POST"]),
        Route("/ops/api/reconcile", ops.reconcile, methods=["POST"]),
        Route("/ops/api/stuck", ops.stuck, methods=["GET"]),
        Route("/ops/api/stuck/requeue", ops.requeue_stuck, methods=["POST"]),
        Route("/ops/api/reviews", ops.reviews, methods=["GET"]),
        Route("/ops/api/reviews/{payment_id}/{action:str}", ops.review, methods=["POST"]),
        Route("/ops/api/jobs/{job_id}", ops.job, methods=["GET"]),
        *dashboard.routes,
        *story_routes(ops, dashboard, StoryDeps(MongoStory(db), gateway, lambda: datetime.now(UTC))),
        *success.routes,
    ]
    handlers: dict[Any, Any] = {
        HTTPException: errors.http_exception,
        errors.ApiError: errors.api_error,
        RequestRefused: errors.refused,
        Unauthorized: errors.unauthorized,
        stripe.StripeError: errors.stripe_failed,
        # Starlette hands this one to ServerErrorMiddleware, so even a failure outside RequestGuard
        # is answered in the API's JSON shape, never Starlette's plain-text 500.
        Exception: errors.unexpected,
    }
    middleware = [
        # Outermost: CORS headers on every answer of the payment routes, the 413 and 500 below included.
        Middleware(PaymentsCors, origins=settings.cors_origins, part="answers"),
        # Request id on every line and answer, one access line, 500 internal_error.
        Middleware(RequestGuard, direct=dict.fromkeys(webhook_paths, webhook)),
        # The preflights, answered with a request id and an access line as any request.
        Middleware(PaymentsCors, origins=settings.cors_origins, part="preflights"),
        Middleware(BodyLimit, caps=dict.fromkeys(webhook_paths, settings.webhook_max_bytes)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers, middleware=middleware)
    # No trailing-slash redirects: Starlette builds their Location from the request's Host header, so
    # any client could make the ingress point elsewhere; such a path is a 404 like any other unknown one.
    app.router.redirect_slashes = False
    return app
