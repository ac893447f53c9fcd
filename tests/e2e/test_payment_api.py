"""The payment API's access rules, validation, reads and rate limits (docs/api.md#authentication)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from bson import ObjectId

from devstack.demo import token
from devstack.stack import Stack
from tests.e2e.shoppers import new_shopper

#: Fields of a payment only admins see, and the bookkeeping nobody sees (adapters/serialize.py).
ADMIN_ONLY = {"idempotencyKey", "reviewRequired", "customerEmail", "specialistEmail", "stripeEventId", "lastEventAt"}
NOBODY = {"openKey", "creatingUntil"}


def unsigned_token(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none``, which must never be accepted."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize("case", ["none", "expired", "wrong secret", "alg none", "garbage"])
def test_bad_tokens_get_401(stack: Stack, http: httpx.Client, stack_db: Any, case: str) -> None:
    """No token, an expired token, another secret's token or alg none: 401 unauthorized."""
    shopper = new_shopper(stack, stack_db)
    claims = {"id": str(shopper.customer_id), "role": "customer", "exp": int(time.time()) + 60}
    secret = stack.app_env()["JWT_SECRET"]
    headers = {
        "none": {},
        "expired": {"Authorization": f"Bearer {token(shopper.customer_id, 'customer', secret, ttl=-10)}"},
        "wrong secret": {
            "Authorization": f"Bearer {jwt.encode(claims, 'not-the-secret-but-long-enough-for-hs256', 'HS256')}"
        },
        "alg none": {"Authorization": f"Bearer {unsigned_token(claims)}"},
        "garbage": {"Authorization": "Bearer abc.def"},
    }[case]
    body = {"serviceId": shopper.service_id, "serviceType": "course"}
    response = http.post("/api/payments/create-intent", json=body, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
    assert http.get("/api/payments/history/customer", headers=headers).status_code == 401


def test_role_is_read_from_users_when_the_token_has_none(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """A token with only an id works, the role coming from users; a specialist may not buy: 403."""
    shopper = new_shopper(stack, stack_db)
    secret = stack.app_env()["JWT_SECRET"]
    bare = jwt.encode({"sub": str(shopper.customer_id), "exp": int(time.time()) + 60}, secret, "HS256")
    ok = http.post(
        "/api/payments/create-intent",
        json={"serviceId": shopper.service_id, "serviceType": "course"},
        headers={"Authorization": f"Bearer {bare}"},
    )
    assert ok.status_code == 200, ok.text
    specialist_id = stack_db.users.insert_one({"email": "s@example.test", "role": "specialist"}).inserted_id
    specialist = token(specialist_id, "specialist", secret)
    refused = http.post(
        "/api/payments/create-intent",
        json={"serviceId": shopper.service_id, "serviceType": "course"},
        headers={"Authorization": f"Bearer {specialist}"},
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


def test_payments_are_visible_to_owner_specialist_and_admin_only(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """Another customer gets 404 for a payment; its customer, its specialist and an admin see it, each their fields."""
    shopper, other = new_shopper(stack, stack_db), new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    secret = stack.app_env()["JWT_SECRET"]
    specialist_id = stack_db.payments.find_one({"paymentId": intent_id})["specialistId"]
    admin_id = stack_db.users.insert_one({"email": "admin@example.test", "role": "admin"}).inserted_id
    url = f"/api/payments/{intent_id}"
    mine = http.get(url, headers=shopper.auth)
    assert mine.status_code == 200 and mine.json()["paymentId"] == intent_id and mine.json()["amount"] == 49900
    assert mine.json()["customerId"] == str(shopper.customer_id)
    assert not ADMIN_ONLY & set(mine.json()) and not NOBODY & set(mine.json())
    assert [set(step) for step in mine.json()["statusHistory"]] == [{"status", "at"}]
    assert http.get(url, headers=other.auth).json()["error"]["code"] == "not_found"
    views = {
        role: http.get(url, headers={"Authorization": f"Bearer {token(user, role, secret)}"})
        for role, user in (("specialist", specialist_id), ("admin", admin_id))
    }
    assert {role: view.status_code for role, view in views.items()} == {"specialist": 200, "admin": 200}
    assert not ADMIN_ONLY & set(views["specialist"].json()) and "customerName" in views["specialist"].json()
    admin = views["admin"].json()
    assert {"idempotencyKey", "customerEmail", "specialistEmail"} <= set(admin) and not NOBODY & set(admin)
    assert admin["statusHistory"][0]["eventId"] is None
    confirm = http.post("/api/payments/confirm-payment", json={"paymentIntentId": intent_id}, headers=other.auth)
    assert confirm.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"serviceId": {"$gt": ""}, "serviceType": "course"},
        {"serviceId": "not-an-id", "serviceType": "course"},
        {"serviceType": "course"},
        {"serviceId": "65f000000000000000000001", "serviceType": ""},
        {"serviceId": "65f000000000000000000001", "serviceType": "course", "amount": "499"},
    ],
)
def test_invalid_bodies_get_422_naming_the_field(
    stack: Stack, http: httpx.Client, stack_db: Any, body: dict[str, Any]
) -> None:
    """An id that is not a 24-hex string (an operator object included) or a bad field is 422."""
    shopper = new_shopper(stack, stack_db)
    response = http.post("/api/payments/create-intent", json=body, headers=shopper.auth)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    assert response.json()["error"]["field"] in {"serviceId", "serviceType", "amount"}


def test_unknown_service_malformed_json_and_operator_ids(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """An unknown service is 404, malformed JSON 400, an operator as a payment id 422."""
    shopper = new_shopper(stack, stack_db)
    unknown = http.post(
        "/api/payments/create-intent",
        json={"serviceId": str(ObjectId()), "serviceType": "course"},
        headers=shopper.auth,
    )
    assert unknown.status_code == 404
    broken = http.post("/api/payments/create-intent", content=b"{", headers=shopper.auth)
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "malformed_json")
    operator = http.post("/api/payments/confirm-payment", json={"paymentIntentId": {"$gt": ""}}, headers=shopper.auth)
    assert operator.status_code == 422
    assert http.get('/api/payments/{"$gt": ""}', headers=shopper.auth).status_code == 422


def test_zero_decimal_and_minimum_amounts(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """JPY prices are not multiplied; a price below Stripe's minimum is a clear 422."""
    yen = new_shopper(stack, stack_db, price=500, currency="JPY")
    assert yen.create_intent(http).json()["amount"] == 500
    tiny = new_shopper(stack, stack_db, price=0.1, currency="USD")
    response = tiny.create_intent(http)
    assert (response.status_code, response.json()["error"]["field"]) == (422, "amount")
    assert "minimum" in response.json()["error"]["message"]


def test_concurrent_create_intents_end_with_one_intent(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """Two concurrent requests from one customer for one service get the same intent."""
    from concurrent.futures import ThreadPoolExecutor

    shopper = new_shopper(stack, stack_db)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: shopper.create_intent(http), range(4)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["paymentId"] for a in answers}) == 1
    assert stack_db.payments.count_documents({"customerId": shopper.customer_id}) == 1


def test_a_changed_price_updates_the_open_intent(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """The open payment is reused with its amount brought up to date when the price changed."""
    shopper = new_shopper(stack, stack_db)
    first = shopper.create_intent(http).json()
    stack_db.services.update_one({"_id": ObjectId(shopper.service_id)}, {"$set": {"price": 599}})
    second = shopper.create_intent(http).json()
    assert (second["paymentId"], second["amount"]) == (first["paymentId"], 59900)
    assert stack_db.payments.find_one({"paymentId": first["paymentId"]})["amount"] == 59900


def test_history_pages_newest_first(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """The caller's payments come newest first, two at a time, with a cursor to the next page."""
    shopper = new_shopper(stack, stack_db)
    for _ in range(3):
        service = stack_db.services.find_one({"_id": ObjectId(shopper.service_id)})
        service.pop("_id")
        new_id = stack_db.services.insert_one(service).inserted_id
        body = {"serviceId": str(new_id), "serviceType": "course"}
        assert http.post("/api/payments/create-intent", json=body, headers=shopper.auth).status_code == 200
    first = http.get("/api/payments/history/customer?limit=2", headers=shopper.auth).json()
    assert len(first["items"]) == 2 and first["nextCursor"]
    rest = http.get(f"/api/payments/history/customer?limit=2&cursor={first['nextCursor']}", headers=shopper.auth)
    items = first["items"] + rest.json()["items"]
    assert rest.json()["nextCursor"] is None and len(items) == 3
    assert [i["createdAt"] for i in items] == sorted((i["createdAt"] for i in items), reverse=True)
    assert http.get("/api/payments/history/customer?limit=101", headers=shopper.auth).status_code == 422
    assert http.get("/api/payments/history/customer?cursor=%%%", headers=shopper.auth).status_code == 422


def test_the_eleventh_create_intent_in_a_minute_is_rate_limited(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """Ten create-intents a minute per user pass; the eleventh gets 429 with Retry-After."""
    shopper = new_shopper(stack, stack_db)
    if time.time() % 60 > 50:  # the windows are calendar minutes: keep the burst inside one
        time.sleep(61 - time.time() % 60)
    codes = [shopper.create_intent(http).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    limited = shopper.create_intent(http)
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


def test_tokens_without_exp_or_for_unknown_users_get_401_and_make_nothing(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """No ``exp``, a user id in no ``users`` document, or a list as role: 401, and no payment is made."""
    shopper = new_shopper(stack, stack_db)
    secret = stack.app_env()["JWT_SECRET"]
    forever = jwt.encode({"id": str(shopper.customer_id), "role": "customer"}, secret, "HS256")
    ghost = ObjectId()
    list_role = {"id": str(shopper.customer_id), "role": ["customer"], "exp": int(time.time()) + 60}
    for bearer in (forever, token(ghost, "customer", secret), jwt.encode(list_role, secret, "HS256")):
        response = http.post(
            "/api/payments/create-intent",
            json={"serviceId": shopper.service_id, "serviceType": "course"},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
    assert stack_db.payments.count_documents({"customerId": {"$in": [shopper.customer_id, ghost]}}) == 0


def test_the_reported_inputs_get_4xx_in_the_error_shape_through_the_server(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """The inputs that used to answer a plain-text 500 get a JSON 4xx through uvicorn, with a request id."""
    shopper = new_shopper(stack, stack_db)
    huge_cursor = base64.urlsafe_b64encode(b"99999999999999999999:" + b"a" * 24).decode()
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    answers = [
        http.post("/api/payments/create-intent", content=deep, headers=shopper.auth),
        http.post("/api/webhooks/stripe", content=deep, headers={"Stripe-Signature": "t=1,v1=00"}),
        shopper.create_intent(http, serviceId=shopper.service_id + "\n"),
        http.get("/api/payments/pi_123%0A", headers=shopper.auth),
        http.get("/api/payments/history/customer", params={"limit": "\u00b2"}, headers=shopper.auth),
        http.get("/api/payments/history/customer", params={"cursor": huge_cursor}, headers=shopper.auth),
    ]
    for response in answers:
        assert 400 <= response.status_code < 500, response.text
        assert set(response.json()) == {"error"} and response.headers["x-request-id"]


def test_bodies_over_64_kib_are_refused_on_the_payment_routes(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """A payment route refuses a body over 64 KiB, declared or chunked, with 413 payload_too_large."""
    shopper = new_shopper(stack, stack_db)
    big = b'{"serviceId": "' + b"0" * 70_000 + b'"}'
    declared = http.post("/api/payments/create-intent", content=big, headers=shopper.auth)
    chunked = http.post("/api/payments/create-intent", content=iter([big[:30_000], big[30_000:]]), headers=shopper.auth)
    for response in (declared, chunked):
        assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")


def test_a_price_that_is_not_a_number_is_422_naming_amount(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """A service priced NaN or Infinity in MongoDB: 422 validation_error on ``amount``, no intent."""
    for price in (float("nan"), float("inf")):
        shopper = new_shopper(stack, stack_db, price=price)
        response = shopper.create_intent(http)
        assert (response.status_code, response.json()["error"]["field"]) == (422, "amount")


def test_the_openapi_schema_is_served(http: httpx.Client) -> None:
    """GET /openapi.json is the OpenAPI 3 document of the payment and webhook routes, with bearer auth."""
    schema = http.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.") and "/api/payments/{paymentId}" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
