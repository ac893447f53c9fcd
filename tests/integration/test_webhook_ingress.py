"""The webhook route verifies, enqueues with the event id as message id, and refuses bad input (CONTRACT §3)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker
from starlette.testclient import TestClient

from adapters.queue import STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE, build_broker
from adapters.settings import Settings
from devstack import events
from devstack.procs import free_port
from ingress.app import create_app
from tests.support import queued_messages, signed

SECRET = "whsec_integration"


@pytest.fixture
def broker(settings: Settings) -> Iterator[RedisBroker]:
    broker = build_broker(settings)
    broker.flush_all()
    yield broker
    broker.flush_all()
    broker.close()


@pytest.fixture
def client(settings: Settings, broker: RedisBroker, db: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings, broker=broker, db=db)) as client:
        yield client


def succeeded_event() -> dict[str, Any]:
    intent = events.payment_intent("payment_intent.succeeded", events.new_id("pi"), 49900, "INR", {})
    return events.event("payment_intent.succeeded", intent)


def queued(broker: RedisBroker) -> list[Any]:
    return queued_messages(broker.client, STRIPE_EVENTS_QUEUE)


def test_a_signed_event_is_enqueued_with_its_event_id(client: TestClient, broker: RedisBroker) -> None:
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


def test_the_alias_route_and_a_rotated_secret_are_accepted(client: TestClient, broker: RedisBroker) -> None:
    """The payments alias takes deliveries signed with the second configured secret."""
    body, headers = signed(succeeded_event(), "whsec_rotated")
    assert client.post("/api/payments/webhooks/stripe", content=body, headers=headers).status_code == 200
    assert len(queued(broker)) == 1


def test_an_unhandled_event_type_is_acknowledged_not_enqueued(client: TestClient, broker: RedisBroker) -> None:
    """Types nobody handles answer 200 ignored and enqueue nothing."""
    body, headers = signed(events.event("customer.created", {"id": "cus_1", "object": "customer"}), SECRET)
    response = client.post("/api/webhooks/stripe", content=body, headers=headers)
    assert response.json() == {"received": True, "ignored": True}
    assert queued(broker) == []


def _bad_deliveries() -> list[tuple[str, bytes, dict[str, str], int, str]]:
    event = succeeded_event()
    good_body, good_headers = signed(event, SECRET)
    forged = signed(event, "whsec_attacker")
    stale = signed(event, SECRET, int(time.time()) - 301)
    not_utf8 = b"\xff\xfe{}"
    not_json = b'{"id": "evt_1", '
    return [
        ("forged", forged[0], forged[1], 400, "invalid_signature"),
        ("stale", stale[0], stale[1], 400, "invalid_signature"),
        ("no header", good_body, {"Content-Type": "application/json"}, 400, "invalid_signature"),
        ("not utf-8", not_utf8, {"Stripe-Signature": events.sign(not_utf8, SECRET)}, 400, "invalid_signature"),
        ("malformed", not_json, {"Stripe-Signature": events.sign(not_json, SECRET)}, 400, "malformed_json"),
        ("not an event", b"[]", {"Stripe-Signature": events.sign(b"[]", SECRET)}, 422, "validation_error"),
        ("too large", b"x" * 5000, good_headers, 413, "payload_too_large"),
    ]


@pytest.mark.parametrize(("case", "body", "headers", "status", "code"), _bad_deliveries(), ids=lambda v: str(v)[:12])
def test_bad_deliveries_are_refused_and_enqueue_nothing(
    client: TestClient, broker: RedisBroker, case: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    """Each kind of bad delivery gets its status and error code, and nothing reaches the queue."""
    response = client.post("/api/webhooks/stripe", content=body, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), case
    assert queued(broker) == []


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient, broker: RedisBroker) -> None:
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
