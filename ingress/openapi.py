"""``GET /openapi.json``: the OpenAPI 3.1 schema of the payment and webhook routes, written by hand.

Kept next to the routes and checked against them by a schemathesis run
(``tests/integration/test_schemathesis.py``): every documented request is answered with a documented
status and body. Patterns here are the ones ``ingress.parse`` enforces.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.exports import ADMIN_COLUMNS, CUSTOMER_COLUMNS, STATISTICS_COLUMNS
from domain.payments import TRANSITIONS
from ingress.parse import INT64_MAX

OBJECT_ID = "^[0-9a-fA-F]{24}$"
INTENT_ID = "^pi_[A-Za-z0-9_]{1,250}$"
NAME = "^[^\\x00-\\x1f\\x7f]+$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error answer; every one carries its request id (the clients show it, the logs have it)."""
    return _json(_ref("Error"), description, {**_REQUEST_ID, **(headers or {})})


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_REQUEST_ID = {"X-Request-Id": {"description": "this request's id in the logs", "schema": {"type": "string"}}}

#: Answers every route may give.
_ALWAYS = {
    "408": _error("head or body not received in time (`request_timeout`); the connection is closed"),
    "413": _error("body larger than the route's cap (`payload_too_large`)"),
    "431": _error("request target and headers over `MAX_HEADER_BYTES` (`headers_too_large`); the connection is closed"),
    "500": _error("unexpected failure (`internal_error`, no detail; the log has it under X-Request-Id)", _REQUEST_ID),
}
_AUTHED = {
    "401": _error("no token, a bad or expired one, one without `exp`, or one for a user not in `users`"),
    **_ALWAYS,
}
_BODY = {
    "400": _error("body is not JSON (`malformed_json`)"),
    "422": _error("body fails validation (`validation_error`, naming the `field`)"),
}
_CUSTOMER_ACTION = {
    **_AUTHED,
    **_BODY,
    "403": _error("caller is not a customer (`forbidden`)"),
    "429": _error("rate limited per user (`rate_limited`)", _RETRY_AFTER),
    "502": _error("Stripe failed (`stripe_error`)"),
}

_WEBHOOK: dict[str, Any] = {
    "summary": "Stripe webhook: verify the signature, enqueue the event, answer",
    "security": [],
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256>` over `t.body`; within 300 s either way",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _ref("StripeEvent")}},
    },
    "responses": {
        "200": _json(_ref("Received"), "verified; enqueued, or acknowledged and ignored (`ignored: true`)"),
        "400": _error("bad, missing or stale signature (`invalid_signature`), or not JSON (`malformed_json`)"),
        "422": _error("verified, but not a Stripe event (`validation_error`)"),
        "503": _error("queue unreachable (`broker_unavailable`): Stripe retries", _RETRY_AFTER),
        **_ALWAYS,
    },
}

_MONEY_FIELDS = {"amount": {"type": "integer"}, "currency": {"type": "string"}}
_STATUS = {"type": "string", "enum": sorted(TRANSITIONS)}
#: What each row of the statistics carries, in minor units.
_FIGURES = {
    "count": "paid payments",
    "gross": "what they were paid",
    "refunded": "refunded of it",
    "disputed": "under an open dispute",
    "disputeLost": "lost in disputes",
    "net": "gross - refunded - disputeLost",
}


def _figures(key: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A statistics row: its ``key`` fields (all there but ``optional``), the currency and every figure."""
    return {
        "type": "object",
        "required": [*(name for name in key if name not in optional), "currency", *_FIGURES],
        "additionalProperties": False,
        "properties": {
            **key,
            "currency": {"type": "string"},
            **{name: {"type": "integer", "description": text} for name, text in _FIGURES.items()},
        },
    }


_PERIOD = [
    {
        "name": name,
        "in": "query",
        "description": f"`createdAt` {bound}; a date (2026-11-01) or a UTC date-time (2026-11-01T10:00:00Z)",
        "schema": {"type": "string", "format": "date-time"},
    }
    for name, bound in (("from", "from (inclusive)"), ("to", "before (exclusive; a date: the end of that day)"))
]


def _format(default: str, csv: str) -> dict[str, Any]:
    return {
        "name": "format",
        "in": "query",
        "description": csv,
        "schema": {"type": "string", "enum": ["csv", "json"], "default": default},
    }


_DOWNLOAD_HEADERS = {
    "Content-Disposition": {
        "description": 'what to save it as: `attachment; filename="<kind>-YYYYMMDD.<format>"` (today, UTC)',
        "schema": {"type": "string", "pattern": '^attachment; filename="[a-z-]+-[0-9]{8}\\.(csv|json)"$'},
    }
}
_CSV = {"text/csv": {"schema": {"type": "string", "description": "UTF-8 CSV, header row first (RFC 4180)"}}}


def _download(columns: tuple[str, ...], what: str) -> dict[str, Any]:
    """A streamed export: CSV with ``columns``, or JSON ``{items}``."""
    return {
        "description": f"{what}, streamed. CSV columns: {', '.join(f'`{c}`' for c in columns)}; amounts in "
        "major units with the currency's decimals (`499.00` INR, `500` JPY, `1.234` KWD); a cell a "
        "spreadsheet would run as a formula starts with `'`. JSON: `{items}`, each as the history shows it",
        "headers": _DOWNLOAD_HEADERS,
        "content": {**_CSV, "application/json": {"schema": _ref("Export")}},
    }


SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "payments-pipeline",
        "version": "1",
        "description": "Stripe webhooks and the payment API of the marketplace.",
    },
    "paths": {
        "/api/webhooks/stripe": {"post": {**_WEBHOOK, "operationId": "stripeWebhook"}},
        "/api/payments/webhooks/stripe": {"post": {**_WEBHOOK, "operationId": "stripeWebhookAlias"}},
        "/api/webhooks/health": {
            "get": {
                "operationId": "health",
                "summary": "Can this process reach Redis and MongoDB",
                "security": [],
                "responses": {
                    "200": _json(_ref("Health"), "both parts answer"),
                    "503": _json(_ref("Health"), "a part is down"),
                    **_ALWAYS,
                },
            }
        },
        "/api/payments/create-intent": {
            "post": {
                "operationId": "createIntent",
                "summary": "Price the service from the catalog and create (or reuse) the customer's PaymentIntent",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CreateIntent")}}},
                "responses": {
                    "200": _json(_ref("Intent"), "the intent to pay with"),
                    "404": _error("unknown or inactive service (`not_found`)"),
                    "409": _error("already enrolled (`already_enrolled`), or a concurrent request (`conflict`)"),
                    **_CUSTOMER_ACTION,
                },
            }
        },
        "/api/payments/confirm-payment": {
            "post": {
                "operationId": "confirmPayment",
                "summary": "Ask Stripe for the intent's state; activate the enrollment if it succeeded",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ConfirmPayment")}},
                },
                "responses": {
                    "200": _json(_ref("Confirmation"), "the payment's status and its enrollment once active"),
                    "404": _error("no such payment of the caller's (`not_found`)"),
                    **_CUSTOMER_ACTION,
                },
            }
        },
        "/api/payments/history/customer": {
            "get": {
                "operationId": "customerHistory",
                "summary": "The caller's payments, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": sorted(TRANSITIONS)}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`nextCursor` of the previous page",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
                    },
                ],
                "responses": {
                    "200": _json(_ref("Page"), "one page"),
                    "422": _error("a bad `status`, `limit` or `cursor` (`validation_error`)"),
                    **_AUTHED,
                },
            }
        },
        "/api/payments/history/customer/export": {
            "get": {
                "operationId": "exportCustomerPayments",
                "summary": "Every one of the caller's payments, newest first, as a CSV or JSON file (no paging)",
                "parameters": [
                    _format("csv", "`csv` (default) or `json`"),
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": sorted(TRANSITIONS)}},
                    *_PERIOD,
                ],
                "responses": {
                    "200": _download(CUSTOMER_COLUMNS, "the caller's payments"),
                    "422": _error(
                        "a bad `format`, `status`, `from` or `to`, or `from` not before `to` (`validation_error`)"
                    ),
                    "429": _error("rate limited per user (`rate_limited`)", _RETRY_AFTER),
                    **_AUTHED,
                },
            }
        },
        "/api/payments/export": {
            "get": {
                "operationId": "exportPayments",
                "summary": "Admins: every payment created in the period, newest first, as a CSV or JSON file",
                "parameters": [_format("csv", "`csv` (default) or `json`"), *_PERIOD],
                "responses": {
                    "200": _download(
                        ADMIN_COLUMNS,
                        "every payment created in the period (`refunds`: their "
                        "count; `reviewRequired`: the reason, when held for review)",
                    ),
                    "403": _error("caller is not an admin (`forbidden`)"),
                    "422": _error("a bad `format`, `from` or `to`, or `from` not before `to` (`validation_error`)"),
                    "429": _error("rate limited per user (`rate_limited`)", _RETRY_AFTER),
                    **_AUTHED,
                },
            }
        },
        "/api/payments/{paymentId}": {
            "get": {
                "operationId": "getPayment",
                "summary": "One payment, as the caller may see it (customer, specialist or admin view)",
                "parameters": [
                    {
                        "name": "paymentId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": INTENT_ID},
                    }
                ],
                "responses": {
                    "200": _json(_ref("Payment"), "the payment"),
                    "404": _error("no such payment, or not the caller's (`not_found`)"),
                    "422": _error("not a PaymentIntent id (`validation_error`)"),
                    **_AUTHED,
                },
            }
        },
        "/api/payments/{paymentId}/refund": {
            "post": {
                "operationId": "requestRefund",
                "summary": "Ask for a full (no amount: what is left) or partial refund, made by the refunds actor",
                "parameters": [
                    {
                        "name": "paymentId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": INTENT_ID},
                    }
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RefundRequest")}}},
                "responses": {
                    "202": _json(_ref("RefundRequested"), "recorded; Stripe's refund follows"),
                    "404": _error("no such payment, or not the caller's to refund (`not_found`)"),
                    "409": _error("more than is left, not paid, under dispute, or past the window (`not_refundable`)"),
                    "429": _error("rate limited per user or per payment (`rate_limited`)", _RETRY_AFTER),
                    **_BODY,
                    **_AUTHED,
                },
            }
        },
        "/api/payments/specialist/statistics": {
            "get": {
                "operationId": "specialistStatistics",
                "summary": "A specialist's earnings per currency, month and service (admins name the specialist)",
                "parameters": [
                    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "specialistId", "in": "query", "schema": {"type": "string", "pattern": OBJECT_ID}},
                    _format("json", "`json` (default): every figure; `csv`: the `byMonth` rows as a file"),
                ],
                "responses": {
                    "200": {
                        "description": "the figures (JSON, in minor units), or the `byMonth` rows as CSV (columns "
                        + ", ".join(f"`{c}`" for c in STATISTICS_COLUMNS)
                        + "; amounts in major units)",
                        "headers": {
                            "Content-Disposition": {
                                **_DOWNLOAD_HEADERS["Content-Disposition"],
                                "description": '`format=csv` only: `attachment; filename="statistics-YYYYMMDD.csv"`',
                            }
                        },
                        "content": {"application/json": {"schema": _ref("Statistics")}, **_CSV},
                    },
                    "403": _error("a customer, or another specialist's figures (`forbidden`)"),
                    "422": _error("a bad date, id or `format`, or an admin naming no specialist (`validation_error`)"),
                    **_AUTHED,
                },
            }
        },
    },
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "the MERN backend's HS256 JWT: `id` (or `sub`), `exp` required, `role` usually",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "additionalProperties": False,
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "pattern": "^[a-z][a-z_]*$"},
                            "message": {"type": "string"},
                            "field": {"type": "string"},
                        },
                    }
                },
            },
            "StripeEvent": {
                "type": "object",
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string", "pattern": "^evt_[A-Za-z0-9_]{1,250}$"},
                    "type": {"type": "string"},
                    "data": {"type": "object"},
                },
            },
            "Received": {
                "type": "object",
                "required": ["received"],
                "additionalProperties": False,
                "properties": {"received": {"const": True}, "ignored": {"const": True}},
            },
            "Health": {
                "type": "object",
                "required": ["status", "redis", "mongo"],
                "additionalProperties": False,
                "properties": {
                    "status": {"enum": ["ok", "degraded"]},
                    "redis": {"enum": ["ok", "down"]},
                    "mongo": {"enum": ["ok", "down"]},
                },
            },
            "CreateIntent": {
                "type": "object",
                "required": ["serviceId", "serviceType"],
                "properties": {
                    "serviceId": {"type": "string", "pattern": OBJECT_ID},
                    "serviceType": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NAME},
                    "amount": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": INT64_MAX,
                        "description": "what the client expects to pay, in minor units; a different price is 422",
                    },
                },
            },
            "Intent": {
                "type": "object",
                "required": ["clientSecret", "paymentId", "amount", "currency", "status"],
                "properties": {
                    "clientSecret": {"type": "string"},
                    "paymentId": {"type": "string", "pattern": INTENT_ID},
                    **_MONEY_FIELDS,
                    "status": {"type": "string", "enum": sorted(TRANSITIONS)},
                },
            },
            "ConfirmPayment": {
                "type": "object",
                "required": ["paymentIntentId"],
                "properties": {"paymentIntentId": {"type": "string", "pattern": INTENT_ID}},
            },
            "Confirmation": {
                "type": "object",
                "required": ["status", "enrollmentId"],
                "properties": {
                    "status": {"type": "string", "enum": sorted(TRANSITIONS)},
                    "enrollmentId": {"type": ["string", "null"]},
                },
            },
            "Payment": {
                "type": "object",
                "required": ["id"],
                "description": "A payment as the caller may see it: its customer and its specialist get the fields "
                "listed here (the specialist `customerName` and `dispute` instead of `specialistName`); admins "
                "every field of the record but its bookkeeping, so more than these",
                "properties": {
                    "id": {"type": "string", "pattern": OBJECT_ID},
                    "paymentId": {"type": ["string", "null"], "description": "the PaymentIntent's id, `pi_…`"},
                    "customerId": {"type": "string", "pattern": OBJECT_ID},
                    "customerName": {"type": ["string", "null"], "description": "specialists and admins"},
                    "specialistId": {"type": "string", "pattern": OBJECT_ID},
                    "specialistName": {"type": ["string", "null"], "description": "customers and admins"},
                    "serviceId": {"type": "string", "pattern": OBJECT_ID},
                    "serviceType": {"type": "string"},
                    "serviceName": {"type": ["string", "null"]},
                    **_MONEY_FIELDS,
                    "status": _STATUS,
                    "amountRefunded": {"type": "integer", "description": "minor units refunded so far"},
                    "refunds": {"type": "array", "items": _ref("Refund")},
                    "statusHistory": {"type": "array", "items": _ref("StatusChange")},
                    "dispute": {"anyOf": [_ref("Dispute"), {"type": "null"}]},
                    "enrollmentId": {"type": ["string", "null"]},
                    "activatedAt": {"type": ["string", "null"], "format": "date-time"},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "updatedAt": {"type": "string", "format": "date-time"},
                },
            },
            "Refund": {
                "type": "object",
                "required": ["refundRequestId", "amount", "status"],
                "description": "one refund request and, once made, Stripe's refund",
                "properties": {
                    "id": {"type": ["string", "null"], "description": "Stripe's refund, `re_…`, once made"},
                    "refundRequestId": {"type": ["string", "null"]},
                    **_MONEY_FIELDS,
                    "status": {
                        "type": "string",
                        "description": "`pending` until Stripe's answer, then Stripe's: `succeeded`, `failed`, …",
                    },
                    "reason": {"type": ["string", "null"]},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "updatedAt": {"type": "string", "format": "date-time"},
                },
            },
            "StatusChange": {
                "type": "object",
                "required": ["status", "at"],
                "properties": {"status": _STATUS, "at": {"type": "string", "format": "date-time"}},
            },
            "Dispute": {
                "type": "object",
                "description": "Stripe's dispute of the payment (specialists and admins)",
                "properties": {
                    "id": {"type": ["string", "null"]},
                    "status": {"type": ["string", "null"]},
                    "reason": {"type": ["string", "null"]},
                    **_MONEY_FIELDS,
                    "createdAt": {"type": ["string", "null"], "format": "date-time"},
                    "updatedAt": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "RefundRequest": {
                "type": "object",
                "properties": {
                    "amount": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "minor units; none: all that is left",
                    },
                    "reason": {
                        "type": "string",
                        "maxLength": 500,
                        "description": "duplicate, fraudulent (never from a customer: 422), "
                        "requested_by_customer, or free text",
                    },
                },
            },
            "RefundRequested": {
                "type": "object",
                "required": ["refundRequestId", "status"],
                "additionalProperties": False,
                "properties": {"refundRequestId": {"type": "string"}, "status": {"const": "pending"}},
            },
            "Statistics": {
                "type": "object",
                "required": ["specialistId", "from", "to", "totals", "byMonth", "byService"],
                "additionalProperties": False,
                "description": "figures in minor units, per currency (never summed across currencies)",
                "properties": {
                    "specialistId": {"type": "string", "pattern": OBJECT_ID},
                    "from": {"type": ["string", "null"], "format": "date-time"},
                    "to": {"type": ["string", "null"], "format": "date-time", "description": "exclusive"},
                    "totals": {"type": "array", "items": _ref("CurrencyFigures")},
                    "byMonth": {"type": "array", "items": _ref("MonthFigures")},
                    "byService": {"type": "array", "items": _ref("ServiceFigures")},
                },
            },
            "CurrencyFigures": _figures({}),
            "MonthFigures": _figures(
                {"month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "description": "`YYYY-MM`, UTC"}}
            ),
            "ServiceFigures": _figures(
                {"serviceId": {"type": "string"}, "serviceName": {"type": ["string", "null"]}},
                optional=("serviceName",),
            ),
            "Export": {
                "type": "object",
                "required": ["items"],
                "additionalProperties": False,
                "properties": {"items": {"type": "array", "items": _ref("Payment")}},
            },
            "Page": {
                "type": "object",
                "required": ["items", "nextCursor"],
                "additionalProperties": False,
                "properties": {
                    "items": {"type": "array", "items": _ref("Payment")},
                    "nextCursor": {"type": ["string", "null"]},
                },
            },
        },
    },
}


async def openapi(request: Request) -> Response:
    """The schema above, as JSON."""
    return JSONResponse(SCHEMA)
