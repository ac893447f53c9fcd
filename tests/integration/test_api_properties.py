"""No input gives a 500, every error has the API's error shape, nothing unverified is enqueued.

Property-based: hypothesis sends arbitrary JSON bodies, raw bytes, ids, query strings, tokens and
headers to the real app (``create_app``) on the test Redis and MongoDB, with a fake Stripe. Example
counts are kept small so the file runs in well under a minute. The error shape: docs/api.md#conventions;
what is checked before anything is queued: docs/architecture.md#security.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import hypothesis.strategies as st
import jwt
import pytest
from hypothesis import HealthCheck, given
from starlette.testclient import TestClient

from adapters.queue import STRIPE_EVENTS_QUEUE, Broker, build_broker
from adapters.settings import Settings
from domain.payments import TRANSITIONS
from ingress.auth import ROLES
from ingress.composition import create_app
from payments_ops import events
from tests.integration.api_support import (
    JWT_SECRET,
    FakeGateway,
    Seeded,
    api_settings,
    assert_error_shape,
    bearer,
    seed,
)
from tests.support import queued_messages

SECRET = "whsec_integration"
POSTS = ("/api/payments/create-intent", "/api/payments/confirm-payment")
WEBHOOKS = ("/api/webhooks/stripe", "/api/payments/webhooks/stripe")


def examples(count: int) -> hypothesis.settings:
    """Hypothesis settings for one property: ``count`` examples, no deadline, fixtures shared by examples."""
    return hypothesis.settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@dataclass
class Api:
    client: TestClient
    seeded: Seeded
    gateway: FakeGateway
    broker: Broker

    @property
    def customer(self) -> dict[str, str]:
        return bearer(self.seeded.customer)

    def queued(self) -> list[Any]:
        return queued_messages(self.broker.client, STRIPE_EVENTS_QUEUE)


@pytest.fixture
def api(settings: Settings, db: Any) -> Iterator[Api]:
    broker = build_broker(settings)
    broker.flush_all()
    gateway = FakeGateway()
    app = create_app(api_settings(settings), broker=broker, db=db, stripe_gateway=gateway)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, seed(db), gateway, broker)
    broker.flush_all()
    broker.close()


def check(response: Any, allowed: set[int]) -> None:
    """Not a 500, a status among ``allowed``, a request id, and an error body in the API's error shape."""
    assert response.status_code in allowed, (response.status_code, response.text)
    assert response.headers.get("x-request-id")
    if response.status_code >= 400:
        assert_error_shape(response.status_code, response.json(), response.text)


# Strategies ---------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SERVICE = "<the seeded service>"
ids = st.one_of(
    st.just(SERVICE),
    st.just(SERVICE + "\n"),
    st.from_regex(r"[0-9a-fA-F]{24}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{24}[\n ]?", fullmatch=True),
    st.text(max_size=30),
    json_values,
)
intent_ids = st.one_of(
    st.from_regex(r"pi_[A-Za-z0-9_]{1,30}", fullmatch=True),
    st.from_regex(r"pi_[A-Za-z0-9]{1,30}\n", fullmatch=True),
    st.text(max_size=40),
    json_values,
)
amounts = st.sampled_from([49900, 0, -1, 2**63, 2**64]) | st.integers() | json_values
create_bodies = st.one_of(
    json_values,
    # well-formed but for one field: the service (seeded, unknown, malformed) and the client's amount
    st.fixed_dictionaries(
        {"serviceId": st.just(SERVICE) | ids, "serviceType": st.just("course")}, optional={"amount": amounts}
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "serviceId": ids,
            "serviceType": st.sampled_from(["course", "", "Course"]) | st.text(max_size=80) | json_values,
            "amount": amounts,
        },
    ),
)
deep = st.integers(min_value=33, max_value=50_000).flatmap(
    lambda n: st.sampled_from([b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n, b"[" * n])
)
raw_bodies = st.binary(max_size=512) | deep | json_values.map(lambda v: json.dumps(v).encode())
#: Header values as bytes: any printable Latin-1 (what reaches the app decoded), no CR/LF.
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
).map(lambda text: text.encode("latin-1"))


def with_service(value: Any, service: str) -> Any:
    """``value`` with the placeholder for the seeded service replaced by its id."""
    if isinstance(value, str):
        return value.replace(SERVICE, service)
    if isinstance(value, dict):
        return {k: with_service(v, service) for k, v in value.items()}
    if isinstance(value, list):
        return [with_service(v, service) for v in value]
    return value


def body_bytes(value: Any) -> bytes:
    """JSON as a client would send it; NaN and Infinity included (which are not JSON: a 400)."""
    return json.dumps(value).encode()


# Properties ---------------------------------------------------------------------------------------


def test_create_intent_takes_any_json_body_without_failing(api: Api) -> None:
    """Arbitrary JSON bodies to create-intent: 200 only for the seeded service, else 4xx in the error shape."""

    @examples(120)
    @given(body=create_bodies)
    def run(body: Any) -> None:
        response = api.client.post(
            POSTS[0], content=body_bytes(with_service(body, str(api.seeded.service))), headers=api.customer
        )
        check(response, {200, 400, 404, 409, 422})
        if response.status_code == 200:
            assert response.json()["paymentId"] in api.gateway.intents

    run()


def test_confirm_payment_takes_any_json_body_without_failing(api: Api) -> None:
    """Arbitrary JSON bodies and intent ids to confirm-payment: 404 or 4xx, never a 500."""

    @examples(60)
    @given(body=json_values | st.fixed_dictionaries({"paymentIntentId": intent_ids}))
    def run(body: Any) -> None:
        check(api.client.post(POSTS[1], content=body_bytes(body), headers=api.customer), {400, 404, 422})

    run()


def test_any_bytes_on_any_post_route_give_an_answer_and_enqueue_nothing(api: Api) -> None:
    """Raw bytes, deep nesting and broken JSON on every POST route: 4xx in the error shape, nothing enqueued."""

    @examples(100)
    @given(path=st.sampled_from(POSTS + WEBHOOKS), body=raw_bodies, signature=st.none() | header_values)
    def run(path: str, body: bytes, signature: bytes | None) -> None:
        headers = [(k.encode(), v.encode()) for k, v in api.customer.items()]
        if signature is not None:
            headers.append((b"Stripe-Signature", signature))
        response = api.client.post(path, content=body, headers=headers)
        check(response, {200, 400, 404, 409, 413, 422})
        assert path in POSTS or response.status_code in {400, 413}
        assert api.queued() == []

    run()


def test_any_payment_id_in_the_path_is_404_or_422(api: Api) -> None:
    """Arbitrary text as ``{paymentId}`` (trailing newlines, operators, Unicode): 404 or 422, never a 500."""

    @examples(80)
    @given(raw=intent_ids.filter(lambda v: isinstance(v, str) and v not in {"", ".", ".."}))
    def run(raw: str) -> None:
        path = "/api/payments/" + urllib.parse.quote(raw, safe="")
        response = api.client.get(path, headers=api.customer)
        check(response, {404, 405, 422})

    run()


def test_any_history_query_is_200_or_422(api: Api) -> None:
    """Arbitrary ``status``, ``limit`` and ``cursor`` (Unicode digits, huge numbers, forged cursors): 200 or 422."""
    digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)
    forged = st.builds(
        lambda millis, oid: base64.urlsafe_b64encode(f"{millis}:{oid}".encode()).decode().rstrip("="),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.from_regex(r"[0-9a-f]{24}", fullmatch=True),
    )

    @examples(100)
    @given(
        status=st.none() | st.sampled_from(sorted(TRANSITIONS)) | st.text(max_size=20),
        limit=st.none() | st.integers(-5, 200).map(str) | digits | st.text(max_size=10) | st.just("9" * 5000),
        cursor=st.none() | forged | st.text(max_size=40),
    )
    def run(status: str | None, limit: str | None, cursor: str | None) -> None:
        params = {k: v for k, v in {"status": status, "limit": limit, "cursor": cursor}.items() if v is not None}
        response = api.client.get("/api/payments/history/customer", params=params, headers=api.customer)
        check(response, {200, 422})

    run()


def test_tokens_with_claims_of_any_type_are_401_never_500(api: Api) -> None:
    """Signed tokens whose ``id``, ``role`` or ``exp`` is any JSON value: 200 only when all three are right.

    Right: the customer's id, no role or the customer's own (``users`` decides), an integer ``exp``
    ahead but at most ``JWT_MAX_AGE_DAYS`` (30) ahead.
    """
    future = int(time.time()) + 3600

    @examples(120)
    @given(
        user=st.sampled_from(["customer", "missing"]) | json_values,
        role=st.sampled_from(sorted(ROLES)) | json_values,
        exp=st.sampled_from([future, None, future - 7200]) | json_values,
    )
    def run(user: Any, role: Any, exp: Any) -> None:
        known = {"customer": str(api.seeded.customer), "missing": "65f0000000000000000000aa"}
        claims = {"id": known.get(user, user) if isinstance(user, str) else user, "role": role, "exp": exp}
        if exp is None:
            del claims["exp"]
        headers = {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, 'HS256')}"}
        response = api.client.get("/api/payments/history/customer", headers=headers)
        check(response, {200, 401})
        right_role = role is None or role == "customer"  # None: read from users
        right_exp = type(exp) is int and time.time() < exp <= time.time() + 30 * 86400
        assert (response.status_code == 200) == (user == "customer" and right_role and right_exp), claims

    run()


def test_any_headers_without_a_valid_token_are_401(api: Api) -> None:
    """Arbitrary Authorization and other header values: 401 unauthorized in the error shape."""

    @examples(80)
    @given(
        authorization=header_values | header_values.map(lambda value: b"Bearer " + value),
        extra=st.dictionaries(st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True), header_values, max_size=3),
        path=st.sampled_from([*POSTS, "/api/payments/history/customer", "/api/payments/pi_123"]),
    )
    def run(authorization: bytes, extra: dict[str, bytes], path: str) -> None:
        headers = [(k.encode(), v) for k, v in {**extra, "Authorization": authorization}.items()]
        if path in POSTS:
            response = api.client.post(path, json={}, headers=headers)
        else:
            response = api.client.get(path, headers=headers)
        check(response, {401})

    run()


def test_only_verified_stripe_events_are_enqueued(api: Api) -> None:
    """Arbitrary JSON signed with our secret, another one, or a timestamp too far off: only ours, on time, as events."""
    handled = "payment_intent.succeeded"

    @examples(80)
    @given(
        event=st.fixed_dictionaries(
            {
                "id": st.from_regex(r"evt_[A-Za-z0-9]{4,24}", fullmatch=True) | json_values,
                "type": st.sampled_from([handled, "customer.created"]) | json_values,
            },
            optional={"data": json_values},
        )
        | json_values,
        secret=st.sampled_from([SECRET, "whsec_rotated", "whsec_attacker"]),
        # Just past the 300 s tolerance: the signed timestamp is whole seconds (up to 1 s early), so
        # +301 could land inside it by the time the ingress reads the clock; +302 cannot.
        skew=st.sampled_from([0, -200, 200, -302, 302, 10**6]),
    )
    def run(event: Any, secret: str, skew: int) -> None:
        api.broker.flush_all()
        body = json.dumps(event).encode()
        signature = events.sign(body, secret, int(time.time()) + skew)
        response = api.client.post(WEBHOOKS[0], content=body, headers={"Stripe-Signature": signature})
        check(response, {200, 400, 413, 422})
        verified = secret != "whsec_attacker" and abs(skew) < 300
        queued = api.queued()
        if response.status_code == 200:
            assert verified and isinstance(event, dict)
            expected = [event["id"]] if event["type"] == handled else []
            assert [m.message_id for m in queued] == expected
        else:
            assert queued == []
        if not verified:
            assert response.json()["error"]["code"] == "invalid_signature"

    run()


# The inputs of the issue, one by one ------------------------------------------------------------


def _deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


def test_the_reported_inputs_are_refused_in_the_error_shape(api: Api) -> None:
    """Each input the issue found answering a plain-text 500 now gets its 4xx in the API's error shape."""
    bad_id, customer = f"{api.seeded.service}\n", api.customer
    huge_cursor = base64.urlsafe_b64encode(b"99999999999999999999:" + b"a" * 24).decode()
    deep = _deep(100_000)
    history = "/api/payments/history/customer"
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", WEBHOOKS[0], {"content": deep, "headers": {"Stripe-Signature": events.sign(deep, SECRET)}}, 422, ""),
        ("POST", POSTS[0], {"content": deep[:60_000], "headers": customer}, 422, ""),
        ("POST", POSTS[0], {"json": {"serviceId": bad_id, "serviceType": "x"}, "headers": customer}, 422, "serviceId"),
        ("POST", POSTS[1], {"json": {"paymentIntentId": "pi_123\n"}, "headers": customer}, 422, "paymentIntentId"),
        ("GET", "/api/payments/pi_123%0A", {"headers": customer}, 422, "paymentId"),
        ("GET", f"{history}?limit=%C2%B2", {"headers": customer}, 422, "limit"),
        ("GET", f"{history}?cursor={huge_cursor}", {"headers": customer}, 422, "cursor"),
        ("GET", f"{history}?status=%7B%22%24ne%22%3A1%7D", {"headers": customer}, 422, "status"),
        ("GET", history, {"headers": bearer(api.seeded.customer, ["admin"])}, 401, ""),
        ("GET", history, {"headers": bearer(api.seeded.customer, {"$ne": 1})}, 401, ""),
        ("GET", history, {"headers": bearer(api.seeded.customer, 7)}, 401, ""),
    ]  # fmt: skip
    for method, path, kwargs, status, field in cases:
        response = api.client.request(method, path, **kwargs)
        check(response, {status})
        code = {401: "unauthorized", 422: "validation_error"}[status]
        assert (response.json()["error"]["code"], response.json()["error"].get("field", "")) == (code, field), path
