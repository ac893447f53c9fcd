"""The answers the app's outer layers make themselves carry CORS too, so the MERN app can read them.

Found in the browser (tests/browser/test_checkout_browser.py, MongoDB stopped): the 500
``internal_error`` ``RequestGuard`` answers, and ``BodyLimit``'s 413, were made outside the CORS
layer, so they had no ``Access-Control-Allow-Origin``; the browser hid them, and the page saw a
refused call ("could not be reached") instead of the API's error and its request id. Preflights
still pass ``RequestGuard`` (a request id and an access line each).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.reads import MongoPaymentReads
from adapters.settings import Settings
from tests.integration.api_support import Seeded, api_settings, bearer, client_of, seed

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


@dataclasses.dataclass
class Served:
    client: TestClient
    seeded: Seeded


@pytest.fixture
def served(settings: Settings, db: Any) -> Iterator[Served]:
    configured = dataclasses.replace(api_settings(settings), cors_origins=(APP,))
    with client_of(configured, db, raise_server_exceptions=False) as client:
        yield Served(client, seed(db))


def exposed(headers: Any) -> set[str]:
    return {h.strip().lower() for h in headers.get("access-control-expose-headers", "").split(",") if h.strip()}


def test_an_unexpected_failure_answers_the_app_with_cors(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payment route that fails unexpectedly: 500 internal_error, readable by the app's origin (its request
    id too), and still nothing for another origin."""

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("MongoDB went away")

    monkeypatch.setattr(MongoPaymentReads, "history", lost)
    auth = bearer(served.seeded.customer)
    answer = served.client.get("/api/payments/history/customer", headers={"Origin": APP, **auth})
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal_error"
    assert answer.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in exposed(answer.headers) and answer.headers["x-request-id"]
    other = served.client.get("/api/payments/history/customer", headers={"Origin": OTHER, **auth})
    assert other.status_code == 500 and "access-control-allow-origin" not in other.headers


def test_a_body_over_the_cap_answers_the_app_with_cors(served: Served) -> None:
    answer = served.client.post(
        "/api/payments/create-intent",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"Origin": APP, "Content-Type": "application/json", **bearer(served.seeded.customer)},
    )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"
    assert answer.headers["access-control-allow-origin"] == APP


def test_a_preflight_still_gets_a_request_id(served: Served) -> None:
    headers = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    answer = served.client.options("/api/payments/create-intent", headers=headers)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["x-request-id"]


def test_the_webhook_gets_no_cors_from_either_layer(served: Served) -> None:
    for path in ("/api/webhooks/stripe", "/api/payments/webhooks/stripe"):
        answer = served.client.post(path, content=b"{}", headers={"Origin": APP})
        assert not [k for k in answer.headers if k.lower().startswith("access-control-")], path
