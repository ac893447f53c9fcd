"""The webhook route verifies, enqueues with the event id as message id, and refuses bad input.

The route: docs/api.md#the-webhook.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.logs import JsonFormatter
from adapters.queue import STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE, Broker
from adapters.settings import Settings
from devstack.procs import free_port
from ingress.composition import create_app
from payments_ops import events
from tests.support import queued_messages, signed

SECRET = "whsec_integration"


@pytest.fixture
def client(settings: Settings, broker: Broker, db: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings, broker=broker, db=db)) as client:
        yield client


def succeeded_event() -> dict[str, Any]:
    intent = events.payment_intent("payment_intent.succeeded", events.new_id("pi"), 49900, "INR", {})
    return events.event("payment_intent.succeeded", intent)


def queued(broker: Broker) -> list[Any]:
    return queued_messages(broker.client, STRIPE_EVENTS_QUEUE)


def test_a_signed_event_is_enqueued_with_its_event_id(client: TestClient, broker: Broker) -> None:
    """A verified delivery answers 200 and leaves one message whose id is the Stripe event id.

    The intent's client secret is stripped before the event reaches the queue.
    """
    event = succeeded_event()
    body, headers = signed(event, SECRET)
    response = client.post("/api/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200 and response.json() == {"received": True}
    [message] = queued(broker)
    assert (message.message_id, message.actor_name) == (event["id"], STRIPE_EVENTS_ACTOR)
    del event["data"]["object"]["client_secret"]
    assert message.args[0] == event


def test_the_alias_route_and_a_rotated_secret_are_accepted(client: TestClient, broker: Broker) -> None:
    """The payments alias takes deliveries signed with the second configured secret."""
    body, headers = signed(succeeded_event(), "whsec_rotated")
    assert client.post("/api/payments/webhooks/stripe", content=body, headers=headers).status_code == 200
    assert len(queued(broker)) == 1


def test_an_unhandled_event_type_is_acknowledged_not_enqueued(client: TestClient, broker: Broker) -> None:
    """Types nobody handles answer 200 ignored and enqueue nothing."""
    body, headers = signed(events.event("customer.created", {"id": "cus_1", "object": "customer"}), SECRET)
    response = client.post("/api/webhooks/stripe", content=body, headers=headers)
    assert response.json() == {"received": True, "ignored": True}
    assert queued(broker) == []


def _bad_deliveries() -> list[tuple[str, bytes, dict[str, str], int, str]]:
    """Each bad delivery, signed now: a signature made at collection time goes stale in a long run."""
    event = succeeded_event()
    good_body, good_headers = signed(event, SECRET)
    forged = signed(event, "whsec_attacker")
    stale = signed(event, SECRET, int(time.time()) - 301)
    future = signed(event, SECRET, int(time.time()) + 3600)
    two_stamps = {"Stripe-Signature": f"t=1,{good_headers['Stripe-Signature']}"}
    deep = b'{"id":' * 40 + b"1" + b"}" * 40
    not_evt = json.dumps({**event, "id": "evt_1\n"}).encode()
    not_utf8 = b"\xff\xfe{}"
    not_json = b'{"id": "evt_1", '
    return [
        ("forged", forged[0], forged[1], 400, "invalid_signature"),
        ("stale", stale[0], stale[1], 400, "invalid_signature"),
        ("future", future[0], future[1], 400, "invalid_signature"),
        ("two timestamps", good_body, two_stamps, 400, "invalid_signature"),
        ("deep nesting", deep, {"Stripe-Signature": events.sign(deep, SECRET)}, 422, "validation_error"),
        ("not an evt id", not_evt, {"Stripe-Signature": events.sign(not_evt, SECRET)}, 422, "validation_error"),
        ("no header", good_body, {"Content-Type": "application/json"}, 400, "invalid_signature"),
        ("not utf-8", not_utf8, {"Stripe-Signature": events.sign(not_utf8, SECRET)}, 400, "invalid_signature"),
        ("malformed", not_json, {"Stripe-Signature": events.sign(not_json, SECRET)}, 400, "malformed_json"),
        ("not an event", b"[]", {"Stripe-Signature": events.sign(b"[]", SECRET)}, 422, "validation_error"),
        ("too large", b"x" * 5000, good_headers, 413, "payload_too_large"),
    ]


BAD_CASES = [case for case, *_ in _bad_deliveries()]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_deliveries_are_refused_and_enqueue_nothing(client: TestClient, broker: Broker, case: str) -> None:
    """Each kind of bad delivery gets its status and error code, and nothing reaches the queue."""
    [(body, headers, status, code)] = [(b, h, s, c) for name, b, h, s, c in _bad_deliveries() if name == case]
    response = client.post("/api/webhooks/stripe", content=body, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), case
    assert queued(broker) == []


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient, broker: Broker) -> None:
    """A body without Content-Length is still cut off at the limit."""
    response = client.post("/api/webhooks/stripe", content=iter([b"x" * 3000, b"x" * 3000]))
    assert response.status_code == 413
    assert queued(broker) == []


def test_broker_down_answers_503_with_retry_after(settings: Settings, db: Any) -> None:
    """With Redis unreachable the ingress answers 503 broker_unavailable so Stripe retries."""
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(down, db=db)) as client:
        body, headers = signed(succeeded_event(), SECRET)
        response = client.post("/api/webhooks/stripe", content=body, headers=headers)
        health = client.get("/api/webhooks/health")
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")
    assert response.json()["error"]["code"] == "broker_unavailable"
    assert (health.status_code, health.json()) == (503, {"status": "degraded", "redis": "down", "mongo": "ok"})


def test_health_reports_both_parts(client: TestClient) -> None:
    """Health answers 200 when Redis and MongoDB both answer."""
    response = client.get("/api/webhooks/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "redis": "ok", "mongo": "ok"})


def test_unknown_routes_answer_in_the_error_shape(client: TestClient) -> None:
    """A 404 from the router has the API's JSON error shape."""
    response = client.get("/api/nothing-here")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_each_request_gets_one_access_line_without_its_query(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The access log names method, path, status and duration, and never the query string."""
    with caplog.at_level("INFO", logger="ingress.access"):
        client.get("/api/webhooks/health?token=secret")
    [line] = [r for r in caplog.records if r.name == "ingress.access"]
    fields = line.__dict__
    assert (fields["method"], fields["path"], fields["status"]) == ("GET", "/api/webhooks/health", 200)
    assert fields["duration_ms"] >= 0 and "secret" not in str(fields)


def test_a_delivery_has_one_access_line_naming_its_event_and_outcome(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The webhook writes no line of its own on success: its access line carries the event id, type and outcome."""
    event = succeeded_event()
    body, headers = signed(event, SECRET)
    with caplog.at_level("INFO"):
        assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    [line] = [r.__dict__ for r in caplog.records if r.name.startswith("ingress")]
    assert (line["event_id"], line["event_type"], line["outcome"], line["status"]) == (
        event["id"],
        "payment_intent.succeeded",
        "enqueued",
        200,
    )


def test_webhook_answers_carry_a_request_id_and_other_methods_are_the_routers_405(client: TestClient) -> None:
    """POSTs skip the app's inner layers (see ``RequestGuard``'s ``direct``), not its request ids; a GET is a 405."""
    body, headers = signed(succeeded_event(), SECRET)
    answers = [client.post("/api/webhooks/stripe", content=body, headers=headers), client.post("/api/webhooks/stripe")]
    assert [a.status_code for a in answers] == [200, 400]
    ids = {a.headers["x-request-id"] for a in answers}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    got = client.get("/api/webhooks/stripe")
    assert (got.status_code, got.json()["error"]["code"]) == (405, "method_not_allowed")


def test_a_client_gone_before_its_body_is_answered_400_and_logged(
    settings: Settings, broker: Broker, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A disconnect while the webhook reads its body: 400 malformed_json, one access line, nothing enqueued."""
    import asyncio

    app = create_app(settings, broker=broker, db=db)
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "POST", "path": "/api/webhooks/stripe", "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    with caplog.at_level("INFO", logger="ingress.access"):
        asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400 and json.loads(sent[1]["body"])["error"]["code"] == "malformed_json"
    [line] = [r.__dict__ for r in caplog.records if r.name == "ingress.access"]
    assert (line["status"], line["path"]) == (400, "/api/webhooks/stripe")
    assert queued(broker) == []


def test_a_signature_header_with_non_ascii_bytes_is_refused(client: TestClient, broker: Broker) -> None:
    """A Latin-1 byte in Stripe-Signature (hmac.compare_digest raises on such str) is 400, not 500."""
    body, headers = signed(succeeded_event(), SECRET)
    header = headers["Stripe-Signature"].replace("v1=", "v1=\xe9").encode("latin-1")
    response = client.post("/api/webhooks/stripe", content=body, headers=[(b"Stripe-Signature", header)])
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_signature")
    assert queued(broker) == []


class JsonLines(logging.Handler):
    """Formats each record as the production handler does, when it is written (inside the request's context)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_every_answer_carries_a_request_id_that_the_log_lines_carry_too(client: TestClient) -> None:
    """Each response has its own X-Request-Id, and the access line of that request names it."""
    capture, access = JsonLines(), logging.getLogger("ingress.access")
    level = access.level
    access.addHandler(capture)
    access.setLevel(logging.INFO)
    try:
        first, second = client.get("/api/webhooks/health"), client.get("/api/nothing-here")
    finally:
        access.removeHandler(capture)
        access.setLevel(level)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)
    assert [line.get("request_id") for line in capture.lines] == ids


def _boom_app(settings: Settings, broker: Broker, db: Any) -> Any:
    from starlette.requests import Request
    from starlette.routing import Route

    async def boom(request: Request) -> Any:
        raise RuntimeError("secret detail: mongodb://user:hunter2@db")

    app = create_app(settings, broker=broker, db=db)
    app.router.routes.append(Route("/boom", boom))
    return app


def test_an_unexpected_error_is_a_json_500_with_the_traceback_only_in_the_log(
    settings: Settings, broker: Broker, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A route raising anything answers 500 internal_error without detail; the log has traceback and request id."""
    with TestClient(_boom_app(settings, broker, db)) as client, caplog.at_level("ERROR"):
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "hunter2" not in response.text and "Traceback" not in response.text
    rid = response.headers["x-request-id"]
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert rid in record.getMessage() and record.exc_info and record.exc_info[0] is RuntimeError


def test_a_failure_outside_the_routes_is_still_a_json_500(settings: Settings, broker: Broker, db: Any) -> None:
    """Starlette's ServerErrorMiddleware answers with the API's JSON too (Exception is a registered handler)."""
    from starlette.middleware import Middleware
    from starlette.types import Receive, Scope, Send

    class Exploding:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                raise RuntimeError("outside every route")
            await self.app(scope, receive, send)

    app = create_app(settings, broker=broker, db=db)
    app.user_middleware.insert(0, Middleware(Exploding))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/webhooks/health")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}


@pytest.mark.parametrize("path", ["/api/payments/create-intent", "/api/payments/confirm-payment", "/api/nothing"])
def test_other_routes_refuse_a_declared_body_over_64_kib_before_anything_else(client: TestClient, path: str) -> None:
    """Every route has a body cap (64 KiB but for the webhook): a larger Content-Length is 413 before auth."""
    too_big = client.post(path, content=b" " * (64 * 1024 + 1))
    assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "payload_too_large")
    assert client.post(path, content=b" " * (64 * 1024)).status_code in {401, 404}  # at the cap: on to the route


def test_the_openapi_schema_is_served(client: TestClient) -> None:
    """GET /openapi.json answers the OpenAPI 3 document of the payment and webhook routes."""
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.json()["openapi"].startswith("3.")
    assert {"/api/webhooks/stripe", "/api/payments/create-intent"} <= set(response.json()["paths"])
