"""``/api/payments/*`` for the MERN frontend: JWT auth, validation, then the domain (CONTRACT §3).

Every blocking call (MongoDB, Redis, Stripe) runs in the thread pool, so one slow request never
stalls the event loop that also takes Stripe's webhooks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.reads import BadCursor, MongoPaymentReads
from ingress.auth import Caller, bearer_token, caller_from_claims, decode
from ingress.errors import ApiError
from ingress.ratelimit import RateLimiter
from ingress.serialize import jsonable, payment_json
from usecases import checkout
from usecases.ports import CheckoutDeps

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
INTENT_ID = re.compile(r"^pi_[A-Za-z0-9_]{1,250}$")
MAX_PAGE = 100


def invalid(message: str, field: str | None = None) -> ApiError:
    return ApiError(422, "validation_error", message, field)


def object_id(value: Any, field: str) -> ObjectId:
    """A client id as an ObjectId; anything else (``{"$gt": ""}`` included) is a 422."""
    if not isinstance(value, str) or not OBJECT_ID.match(value):
        raise invalid(f"{field} must be a 24-character hex id", field)
    return ObjectId(value)


def intent_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not INTENT_ID.match(value):
        raise invalid(f"{field} must be a Stripe PaymentIntent id (pi_…)", field)
    return value


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "malformed_json", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


@dataclass
class PaymentRoutes:
    jwt_secret: str
    deps: CheckoutDeps
    reads: MongoPaymentReads
    limiter: RateLimiter
    role_of: Callable[[ObjectId], str | None]

    async def caller(self, request: Request, *roles: str) -> Caller:
        claims = decode(bearer_token(request), self.jwt_secret)
        who = await run_in_threadpool(caller_from_claims, claims, self.role_of)
        if roles and who.role not in roles:
            raise ApiError(403, "forbidden", f"only a {' or '.join(roles)} may do this")
        return who

    async def limit(self, caller: Caller, action: str) -> None:
        wait = await run_in_threadpool(self.limiter.hit, f"{action}:{caller.id}")
        if wait:
            raise ApiError(429, "rate_limited", "too many requests; slow down", headers={"Retry-After": str(wait)})

    async def create_intent(self, request: Request) -> Response:
        caller = await self.caller(request, "customer")
        await self.limit(caller, "create-intent")
        body = await json_object(request)
        service_id = object_id(body.get("serviceId"), "serviceId")
        service_type = body.get("serviceType")
        if not isinstance(service_type, str) or not service_type:
            raise invalid("serviceType must be a non-empty string", "serviceType")
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount < 0):
            raise invalid("amount must be a whole number of minor units", "amount")
        answer = await run_in_threadpool(checkout.create_intent, caller.id, service_id, service_type, amount, self.deps)
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
        body = await json_object(request)
        pid = intent_id(body.get("paymentIntentId"), "paymentIntentId")
        status, enrollment_id = await run_in_threadpool(checkout.confirm_payment, caller.id, pid, self.deps)
        return JSONResponse({"status": status, "enrollmentId": jsonable(enrollment_id)})

    async def get_payment(self, request: Request) -> Response:
        caller = await self.caller(request)
        pid = intent_id(request.path_params["payment_id"], "paymentId")
        doc = await run_in_threadpool(self.reads.visible, pid, caller.id, caller.admin)
        if doc is None:
            raise ApiError(404, "not_found", "payment not found")
        return JSONResponse(payment_json(doc))

    async def history(self, request: Request) -> Response:
        caller = await self.caller(request)
        params = request.query_params
        raw_limit = params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise invalid(f"limit must be 1 to {MAX_PAGE}", "limit")
        try:
            docs, cursor = await run_in_threadpool(
                self.reads.history, caller.id, params.get("status") or None, int(raw_limit), params.get("cursor")
            )
        except BadCursor as error:
            raise invalid(str(error), "cursor") from None
        return JSONResponse({"items": [payment_json(d) for d in docs], "nextCursor": cursor})
