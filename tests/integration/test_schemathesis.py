"""The served OpenAPI schema and the app agree: schemathesis fuzzes every documented operation.

The schema is loaded from the app's own ``GET /openapi.json`` (``schemathesis.openapi.from_asgi``)
and each operation gets schema-conforming (positive) and schema-violating (negative) requests with
a valid customer JWT. Checks: no 500, every status, header and content type documented, every body
valid against its documented schema. (``negative_data_rejection`` is left out: the API ignores
unknown query parameters, as web APIs do, and the fixed token stands in for a removed header.)
Example counts are small to keep the run short. The routes and operations: docs/api.md#routes-and-operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.queue import STRIPE_EVENTS_QUEUE, build_broker
from adapters.settings import Settings
from ingress.composition import create_app
from ingress.openapi import SCHEMA
from tests.integration.api_support import FakeGateway, api_settings, bearer, seed
from tests.support import queued_messages

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OPERATIONS = sorted(f"{method.upper()} {path}" for path, methods in SCHEMA["paths"].items() for method in methods)
#: Operations with some input to break (health has none, so it has no negative cases).
WITH_INPUT = {
    f"{method.upper()} {path}"
    for path, methods in SCHEMA["paths"].items()
    for method, operation in methods.items()
    if operation.get("parameters") or operation.get("requestBody")
}


@dataclass
class Fuzzed:
    schema: Any
    auth: dict[str, str]
    queue: Any


@pytest.fixture
def fuzzed(settings: Settings, db: Any) -> Iterator[Fuzzed]:
    broker = build_broker(settings)
    broker.flush_all()
    app = create_app(api_settings(settings), broker=broker, db=db, stripe_gateway=FakeGateway())
    seeded = seed(db)
    yield Fuzzed(
        schemathesis.openapi.from_asgi("/openapi.json", app),
        bearer(seeded.customer),
        lambda: queued_messages(broker.client, STRIPE_EVENTS_QUEUE),
    )
    broker.flush_all()
    broker.close()


def test_the_served_schema_lists_every_payment_and_webhook_route(fuzzed: Fuzzed) -> None:
    """``GET /openapi.json`` documents the webhook routes, health and the eight payment routes, with bearer auth."""
    assert OPERATIONS == [
        "GET /api/payments/export",
        "GET /api/payments/history/customer",
        "GET /api/payments/history/customer/export",
        "GET /api/payments/specialist/statistics",
        "GET /api/payments/{paymentId}",
        "GET /api/webhooks/health",
        "POST /api/payments/confirm-payment",
        "POST /api/payments/create-intent",
        "POST /api/payments/webhooks/stripe",
        "POST /api/payments/{paymentId}/refund",
        "POST /api/webhooks/stripe",
    ]
    assert SCHEMA["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


#: Every operation with valid requests, and those with some input with invalid ones too.
CASES = [
    pytest.param(label, mode, id=f"{mode.value}-{label}")
    for mode in EXAMPLES
    for label in OPERATIONS
    if mode is GenerationMode.POSITIVE or label in WITH_INPUT
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_every_operation_answers_as_documented(fuzzed: Fuzzed, label: str, mode: GenerationMode) -> None:
    """Fuzzed requests to ``label`` get documented answers, never a 500; nothing unsigned reaches the queue."""
    method, path = label.split(" ", 1)
    operation = fuzzed.schema[path][method]

    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(headers=fuzzed.auth, checks=CHECKS)

    run()
    assert fuzzed.queue() == []
