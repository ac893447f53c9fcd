"""``/api/payments/*`` for the MERN frontend: JWT auth, validation, then the domain.

Every blocking call (MongoDB, Redis, Stripe) runs in a thread pool of its own (``PAYMENT_THREADS``),
so a slow Stripe can hold at most that many threads: the event loop and the default pool, which
the webhook's enqueue uses, stay free for Stripe's deliveries. Every input goes through ``ingress.parse``:
ids (``serviceId``: ObjectId; ``paymentIntentId`` and the path's ``paymentId``: ``pi_…``),
``serviceType``, ``amount``, and the history's ``status`` (an enum), ``limit`` (1 to 100) and ``cursor``.
What each caller sees of a payment is ``adapters.serialize.payment_json``'s allow-list. What each route does:
docs/api.md#what-the-payment-routes-do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from adapters.reads import BadCursor, MongoPaymentReads
from adapters.serialize import jsonable, payment_json, view_of
from adapters.statistics import MongoStatistics
from domain.exports import STATISTICS_COLUMNS, statistics_row
from domain.payments import TRANSITIONS
from domain.refunds import check_reason
from ingress import downloads, parse
from ingress.auth import DEFAULT_MAX_AGE_DAYS, Caller, UserLookup, bearer_token, caller_from_claims, decode
from ingress.errors import ApiError
from ingress.ratelimit import RateLimiter
from usecases import checkout, refunds
from usecases.ports import CheckoutDeps

T = TypeVar("T")

MAX_PAGE = 100
#: Threads the payment routes may hold at once; Starlette's default pool (40) is left to the webhook.
PAYMENT_THREADS = 16
#: The payment statuses the history may be filtered by (docs/architecture.md#payment-states).
STATUSES = frozenset(TRANSITIONS)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (``BodyLimit`` has capped its size; ``parse`` its depth and content)."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise parse.Malformed("client disconnected before the body was read") from None
    return parse.json_object(raw)


@dataclass
class PaymentRoutes:
    jwt_secret: str
    deps: CheckoutDeps
    reads: MongoPaymentReads
    limiter: RateLimiter
    find_user: UserLookup
    #: How long after paying a customer may ask for a refund (``REFUND_WINDOW_DAYS``).
    refund_window: timedelta
    stats: MongoStatistics
    #: How far ahead a token's ``exp`` may be (``JWT_MAX_AGE_DAYS``).
    jwt_max_age_days: int = DEFAULT_MAX_AGE_DAYS
    #: Refund requests a minute per user (``REFUND_RATE_LIMIT_PER_MINUTE``) and per payment, whoever
    #: asks (``REFUND_PAYMENT_RATE_LIMIT_PER_MINUTE``): each taken one is a Stripe refund and two emails.
    refunds_per_user: int = 5
    refunds_per_payment: int = 3
    _pool: CapacityLimiter | None = field(default=None, init=False)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the payment routes' own thread pool (made on first use, inside the loop)."""
        if self._pool is None:
            self._pool = CapacityLimiter(PAYMENT_THREADS)
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._pool)

    async def caller(self, request: Request, *roles: str) -> Caller:
        claims = decode(bearer_token(request), self.jwt_secret, self.jwt_max_age_days)
        who = await self.blocking(caller_from_claims, claims, self.find_user)
        if roles and who.role not in roles:
            raise ApiError(403, "forbidden", f"only a {' or '.join(roles)} may do this")
        return who

    async def limit(self, caller: Caller, action: str, per_minute: int | None = None) -> None:
        await self.limit_key(f"{action}:{caller.id}", per_minute)

    async def limit_key(self, key: str, per_minute: int | None = None) -> None:
        wait = await self.blocking(self.limiter.hit, key, per_minute)
        if wait:
            raise ApiError(429, "rate_limited", "too many requests; slow down", headers={"Retry-After": str(wait)})

    async def create_intent(self, request: Request) -> Response:
        caller = await self.caller(request, "customer")
        await self.limit(caller, "create-intent")
        body = await json_body(request)
        service_id = parse.object_id(body.get("serviceId"), "serviceId")
        service_type = parse.name(body.get("serviceType"), "serviceType")
        amount = parse.minor_amount(body.get("amount"), "amount")
        answer = await self.blocking(checkout.create_intent, caller.id, service_id, service_type, amount, self.deps)
        return JSONResponse(
            {
                "clientSecret": answer.client_secret,
                "paymentId": answer.payment_id,
                "amount": answer.amount,
                "currency": answer.currency,
                "status": answer.status,
            }
        )

    async def confirm_payment(self, request: Request) -> Response:
        caller = await self.caller(request, "customer")
        await self.limit(caller, "confirm-payment")
        body = await json_body(request)
        pid = parse.intent_id(body.get("paymentIntentId"), "paymentIntentId")
        confirm = partial(checkout.confirm_payment, now=datetime.now(UTC))
        status, enrollment_id = await self.blocking(confirm, caller.id, pid, self.deps)
        return JSONResponse({"status": status, "enrollmentId": jsonable(enrollment_id)})

    async def refund(self, request: Request) -> Response:
        """A refund request, limited per user and then per payment.

        The payment's own limit is counted only for a caller who may see the payment (anyone else
        gets the 404 the use case would give), so nobody can spend the limit of someone else's.
        """
        caller = await self.caller(request)
        await self.limit(caller, "refund", self.refunds_per_user)
        pid = parse.intent_id(request.path_params["payment_id"], "paymentId")
        body = await json_body(request)
        amount = parse.minor_amount(body.get("amount"), "amount")
        if amount == 0:
            raise parse.Invalid("amount must be at least 1 minor unit", "amount")
        reason = parse.text(body.get("reason"), "reason")
        check_reason(reason, customer=caller.role == "customer")
        if await self.blocking(self.reads.visible, pid, caller.id, caller.admin) is None:
            raise ApiError(404, "not_found", "payment not found")
        await self.limit_key(f"refund-payment:{pid}", self.refunds_per_payment)
        who = refunds.Requester(caller.id, caller.role)
        request_id = await self.blocking(
            partial(refunds.request_refund, now=datetime.now(UTC), window=self.refund_window),
            pid,
            who,
            amount,
            reason,
            self.deps.core,
        )
        return JSONResponse({"refundRequestId": request_id, "status": "pending"}, status_code=202)

    async def statistics(self, request: Request) -> Response:
        """A specialist's earnings (admins name the specialist); ``from``/``to`` bound ``paidAt``, ``to`` exclusive.

        ``format=csv``: the ``byMonth`` rows as a CSV file, amounts in major units.
        """
        caller = await self.caller(request, "specialist", "admin")
        params = request.query_params
        asked = params.get("specialistId") or None
        if caller.admin and asked is None:
            raise parse.Invalid("an admin must name the specialist", "specialistId")
        specialist = parse.object_id(asked, "specialistId") if asked else caller.id
        if not caller.admin and specialist != caller.id:
            raise ApiError(403, "forbidden", "a specialist sees their own statistics only")
        start, end = parse.query_period(params)
        fmt = downloads.export_format(params, default="json")
        figures = await self.blocking(self.stats.earnings, specialist, start, end)
        if fmt == "csv":  # the byMonth rows, for a spreadsheet
            return downloads.csv_file("statistics", [STATISTICS_COLUMNS, *map(statistics_row, figures["byMonth"])])
        return JSONResponse(
            jsonable({"specialistId": specialist, "from": start, "to": end, **figures}),
        )

    async def get_payment(self, request: Request) -> Response:
        caller = await self.caller(request)
        pid = parse.intent_id(request.path_params["payment_id"], "paymentId")
        doc = await self.blocking(self.reads.visible, pid, caller.id, caller.admin)
        if doc is None:
            raise ApiError(404, "not_found", "payment not found")
        return JSONResponse(payment_json(doc, view_of(doc, caller.id, caller.admin)))

    async def history(self, request: Request) -> Response:
        caller = await self.caller(request)
        params = request.query_params
        status = parse.choice(params, "status", STATUSES)
        limit = parse.query_int(params, "limit", 20, 1, MAX_PAGE)
        cursor = parse.cursor(params)
        try:
            docs, next_cursor = await self.blocking(self.reads.history, caller.id, status, limit, cursor)
        except BadCursor as error:
            raise parse.Invalid(str(error), "cursor") from None
        items = [payment_json(d, view_of(d, caller.id, caller.admin)) for d in docs]
        return JSONResponse({"items": items, "nextCursor": next_cursor})
