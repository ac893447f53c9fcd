"""CORS for the MERN app's browser code: ``/api/payments/…`` only, the configured origins only.

The real app on the test Redis and MongoDB (``api_support``), with ``CORS_ORIGINS`` set to one
origin; ``CORS_ORIGINS`` itself is checked at start-up like every other variable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.settings import ConfigError, Settings, load_settings
from tests.integration.api_support import Seeded, api_settings, bearer, client_of, seed

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}


@dataclasses.dataclass
class Cors:
    client: TestClient
    seeded: Seeded


@pytest.fixture
def cors(settings: Settings, db: Any) -> Iterator[Cors]:
    with client_of(dataclasses.replace(api_settings(settings), cors_origins=(APP,)), db) as client:
        yield Cors(client, seed(db))


def allow_headers(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control-")}


def vary(headers: Any) -> list[str]:
    return [v.strip() for v in headers.get("vary", "").split(",") if v.strip()]


def test_a_preflight_from_the_app_is_answered(cors: Cors) -> None:
    """OPTIONS from the configured origin: 200, that origin (never ``*``), the methods and headers, no credentials."""
    answer = cors.client.options("/api/payments/create-intent", headers={"Origin": APP, **PREFLIGHT})
    assert answer.status_code == 200  # 405 before CORS
    headers = answer.headers
    assert headers["access-control-allow-origin"] == APP
    assert {"GET", "POST"} <= {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "Origin" in vary(headers)
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    "path", ["/api/payments/create-intent", "/api/payments/history/customer/export", "/api/payments/pi_x/refund"]
)
def test_a_preflight_from_another_origin_gets_no_allow_header(cors: Cors, path: str) -> None:
    """Another origin is told nothing: no ``Access-Control-*`` header, a 400 in the API's error shape."""
    answer = cors.client.options(path, headers={"Origin": OTHER, **PREFLIGHT})
    assert allow_headers(answer.headers) == {}
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "cors_refused"


def test_a_preflight_for_a_method_or_header_not_allowed_gets_no_allow_header(cors: Cors) -> None:
    """The app's own origin asking for DELETE or an unknown header: refused, no ``Access-Control-*`` header."""
    for asked in ({"Access-Control-Request-Method": "DELETE"}, {**PREFLIGHT, "Access-Control-Request-Headers": "x-a"}):
        answer = cors.client.options("/api/payments/create-intent", headers={"Origin": APP, **asked})
        assert (answer.status_code, allow_headers(answer.headers)) == (400, {})


def test_an_actual_request_from_the_app_gets_its_origin_echoed(cors: Cors) -> None:
    """A GET with ``Origin``: the origin echoed, ``Vary: Origin``, the file name readable by the app's code."""
    answer = cors.client.get("/api/payments/history/customer", headers={"Origin": APP, **bearer(cors.seeded.customer)})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    assert "Origin" in vary(answer.headers)
    assert "Content-Disposition" in answer.headers["access-control-expose-headers"]
    assert "access-control-allow-credentials" not in answer.headers
    # An error answer too, so the app can read the API's error.
    refused = cors.client.get("/api/payments/history/customer", headers={"Origin": APP})
    assert (refused.status_code, refused.headers["access-control-allow-origin"]) == (401, APP)


def test_an_actual_request_from_another_origin_gets_only_vary(cors: Cors) -> None:
    answer = cors.client.get(
        "/api/payments/history/customer", headers={"Origin": OTHER, **bearer(cors.seeded.customer)}
    )
    assert answer.status_code == 200
    assert allow_headers(answer.headers) == {}
    assert "Origin" in vary(answer.headers)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/webhooks/stripe", "POST"),
        ("/api/payments/webhooks/stripe", "POST"),
        ("/api/webhooks/health", "GET"),
        ("/ops", "GET"),
        ("/ops/api/queues", "GET"),
        ("/metrics", "GET"),
    ],
)
def test_webhooks_ops_and_metrics_never_answer_cors(cors: Cors, path: str, method: str) -> None:
    """Not the payment API: neither a preflight nor an actual request gets any CORS header."""
    preflight = cors.client.options(path, headers={"Origin": APP, **PREFLIGHT, "Access-Control-Request-Method": method})
    actual = cors.client.request(method, path, headers={"Origin": APP})
    for answer in (preflight, actual):
        assert allow_headers(answer.headers) == {}, (answer.status_code, answer.headers)
        assert "Origin" not in vary(answer.headers)


# Configuration --------------------------------------------------------------------------------------

BASE = {"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc", "JWT_SECRET": "s3cret"}
PRODUCTION = {
    "APP_ENV": "production",
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 32,
    "JWT_SECRET": "j" * 32,
    "QUEUE_SIGNING_KEY": "q" * 32,
    "SMTP_URL": "smtp://mail.example.com",
}


def test_the_default_is_the_app_s_origin_outside_production_and_none_in_it() -> None:
    """Development: the origin of APP_BASE_URL (Vite's by default); production: none unless named."""
    assert load_settings(BASE, dotenv=None).cors_origins == ("http://localhost:5173",)
    app = load_settings({**BASE, "APP_BASE_URL": "https://App.example.com/learn/"}, dotenv=None)
    assert app.cors_origins == (APP,)
    assert load_settings(PRODUCTION, dotenv=None).cors_origins == ()
    named = load_settings({**PRODUCTION, "CORS_ORIGINS": f"{APP}, https://admin.example.com:8443"}, dotenv=None)
    assert named.cors_origins == (APP, "https://admin.example.com:8443")


def test_origins_are_kept_as_browsers_send_them() -> None:
    """Lower case, without the scheme's default port: the match is exact."""
    given = "HTTPS://App.Example.com:443,http://localhost:5173,http://[::1]:3000"
    got = load_settings({**BASE, "CORS_ORIGINS": given}, dotenv=None).cors_origins
    assert got == (APP, "http://localhost:5173", "http://[::1]:3000")


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://app.example.com/",
        "https://app.example.com/app",
        "app.example.com",
        "ftp://app.example.com",
        "https://app.example.com,",
        "https://app.example.com:99999",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "null",
    ],
)
def test_a_malformed_origin_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ORIGINS") as raised:
        load_settings({**BASE, "CORS_ORIGINS": value}, dotenv=None)
    assert "\n" not in str(raised.value)
