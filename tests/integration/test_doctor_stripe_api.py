"""The doctor's Stripe side against an HTTP server answering as Stripe's API does (no ``/_config/webhooks``):
it asks the webhook endpoints API, reads Stripe's shapes, filters undelivered events, and reads the Date header."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from adapters.doctor import StripeSide
from adapters.settings import load_settings
from domain.doctor import Endpoint
from usecases.handlers import SUBSCRIBED

ENDPOINTS = {
    "object": "list",
    "url": "/v1/webhook_endpoints",
    "has_more": False,
    "data": [
        {"id": "we_1", "object": "webhook_endpoint", "url": "https://pay.example.com/api/webhooks/stripe",
         "enabled_events": ["payment_intent.succeeded", "charge.refunded"], "status": "enabled"},
        {"id": "we_2", "object": "webhook_endpoint", "url": "https://old.example.com/hook",
         "enabled_events": ["*"], "status": "disabled"},
    ],
}  # fmt: skip


class FakeStripe(BaseHTTPRequestHandler):
    """Answers the two list calls with Stripe's shapes and remembers what was asked; 404 elsewhere."""

    asked: ClassVar[list[tuple[str, dict[str, list[str]]]]] = []
    clock_ahead = timedelta(0)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        type(self).asked.append((path, urllib.parse.parse_qs(query)))
        if path == "/v1/webhook_endpoints":
            self.answer(200, ENDPOINTS)
        elif path == "/v1/events":
            events = [{"id": f"evt_{i}", "object": "event", "type": "charge.refunded"} for i in range(3)]
            self.answer(200, {"object": "list", "url": "/v1/events", "has_more": False, "data": events})
        else:
            self.answer(404, {"error": {"message": "Unrecognized request URL", "type": "invalid_request_error"}})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response_only(status)
        self.send_header("Date", format_datetime(datetime.now(UTC) + self.clock_ahead, usegmt=True))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stripe_side() -> Iterator[StripeSide]:
    FakeStripe.asked, FakeStripe.clock_ahead = [], timedelta(0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {"STRIPE_SECRET_KEY": "sk_test_doctor", "STRIPE_WEBHOOK_SECRET": "whsec_doctor", "JWT_SECRET": "doctor",
           "STRIPE_API_BASE": f"http://127.0.0.1:{server.server_port}"}  # fmt: skip
    try:
        yield StripeSide(load_settings(env, dotenv=None))
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_without_config_webhooks_is_asked_as_stripe(stripe_side: StripeSide) -> None:
    assert not stripe_side.local and stripe_side.where == "Stripe's webhook endpoints API"
    assert stripe_side.webhook_endpoints() == [
        Endpoint("https://pay.example.com/api/webhooks/stripe", ("payment_intent.succeeded", "charge.refunded")),
        Endpoint("https://old.example.com/hook", ("*",), enabled=False),
    ]
    assert "stripe webhook_endpoints create --url https://pay.example.com" in stripe_side.create_command(
        "https://pay.example.com", SUBSCRIBED
    )


def test_undelivered_events_are_asked_of_the_handled_types_since_the_given_time(stripe_side: StripeSide) -> None:
    since = datetime(2026, 12, 6, tzinfo=UTC)
    assert stripe_side.undelivered_events(SUBSCRIBED, since) == 3
    query = next(q for path, q in FakeStripe.asked if path == "/v1/events")
    assert query["delivery_success"] == ["false"]
    assert query["created[gte]"] == [str(int(since.timestamp()))]
    assert sorted(v[0] for k, v in query.items() if k.startswith("types[")) == sorted(SUBSCRIBED)


def test_the_clock_skew_is_read_off_the_date_header(stripe_side: StripeSide) -> None:
    assert abs(stripe_side.clock_skew()) < 2
    FakeStripe.clock_ahead = timedelta(minutes=2)
    assert 118 < stripe_side.clock_skew() < 122
