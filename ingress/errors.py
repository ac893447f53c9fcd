"""The one JSON error shape of the API (docs/api.md#conventions): ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.errors import RequestRefused

log = logging.getLogger(__name__)


def error(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 answered in the API's shape."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, _CODES.get(exc.status_code, "http_error"), exc.detail, headers=exc.headers)


class ApiError(Exception):
    """Raise anywhere in a route to answer with the API's error shape."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers


#: HTTP status of each domain refusal code.
REFUSAL_STATUS = {
    "not_found": 404,
    "already_enrolled": 409,
    "conflict": 409,
    "not_refundable": 409,
    "amount_mismatch": 422,
    "validation_error": 422,
}


def api_answer(exc: ApiError) -> JSONResponse:
    return error(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_answer(exc)


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRefused)
    return error(REFUSAL_STATUS.get(exc.code, 422), exc.code, exc.message, exc.field)


async def unauthorized(request: Request, exc: Exception) -> Response:
    log.info("unauthorized", extra={"error": str(exc), "path": request.url.path})
    return error(401, "unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


async def stripe_failed(request: Request, exc: Exception) -> Response:
    """Stripe refused or could not be reached after retries: a gateway error, details in the log."""
    log.warning("stripe call failed", extra={"error": f"{type(exc).__name__}: {exc}", "path": request.url.path})
    return error(502, "stripe_error", "the payment provider could not complete the request; retry")


def request_id(request: Request) -> str:
    """The id ``RequestGuard`` gave this request (``-`` if it never got one)."""
    state = request.scope.get("state") or {}
    return str(state.get("request_id", "-"))


def internal_error(rid: str) -> JSONResponse:
    """The answer to any unexpected failure: no detail, only the request id to find it in the log."""
    return error(500, "internal_error", "internal error", headers={"X-Request-Id": rid})


async def unexpected(request: Request, exc: Exception) -> Response:
    """Starlette's last resort (``ServerErrorMiddleware``), for a failure outside ``RequestGuard``.

    Registered for ``Exception`` so that Starlette never answers its plain-text 500 first.
    """
    rid = request_id(request)
    log.error(
        f"unhandled error (request {rid})",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"path": request.url.path, "error": type(exc).__name__},
    )
    return internal_error(rid)
