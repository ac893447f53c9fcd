"""The payment routes' answers are what the served schema says, field by field, for a payment with a history.

The TypeScript client's types are generated from the schema (clients/payments-api), so a field the
schema left out or typed wrong is a field the MERN app cannot use. Schemathesis fuzzes every route
with a customer's token and mostly empty data; here a paid payment with a refund carried out and a
dispute is read by its customer and its specialist, its statistics by the specialist, and every
answer is validated against its documented schema, with no field left undocumented in the
customer's and the specialist's views.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jsonschema_rs
import pytest
from starlette.testclient import TestClient

from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from adapters.settings import Settings
from ingress.openapi import SCHEMA
from payments_ops.simulate import pending_payment
from tests.fakes import mongo_deps
from tests.integration.api_support import Seeded, api_settings, bearer, client_of, seed
from usecases.refunds import Requester, execute_refund, request_refund


def validator(name: str) -> Any:
    """A validator of ``components/schemas/<name>`` that refuses properties the schema does not name."""
    components = {"schemas": {key: _closed(schema) for key, schema in SCHEMA["components"]["schemas"].items()}}
    return jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components})


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``additionalProperties: false`` on it and every object inside it."""
    if schema.get("type") == "object" and "properties" in schema:
        properties = {key: _closed(value) for key, value in schema["properties"].items()}
        return {**schema, "properties": properties, "additionalProperties": False}
    if "items" in schema:
        return {**schema, "items": _closed(schema["items"])}
    return schema


@pytest.fixture
def client(settings: Settings, db: Any) -> Iterator[TestClient]:
    with client_of(api_settings(settings), db) as c:
        yield c


def paid_with_history(db: Any, who: Seeded) -> str:
    """A payment of ``who``'s completed a day ago, refunded in part (through the refund use cases), disputed."""
    ensure_all_indexes(db)
    doc = pending_payment("pi_schema")
    day_ago = now() - timedelta(days=1)
    doc.update(
        customerId=who.customer,
        specialistId=who.specialist,
        serviceId=who.service,
        status="completed",
        paidAt=day_ago,
        activatedAt=day_ago,
        openKey=None,
    )
    db.payments.insert_one(doc)
    deps = mongo_deps(db)
    request = request_refund(
        "pi_schema",
        Requester(who.customer, "customer"),
        9900,
        "requested_by_customer",
        deps,
        now=now(),
        window=timedelta(days=30),
    )
    execute_refund("pi_schema", request, deps, holder="schema-test")
    dispute = {
        "id": "dp_schema",
        "status": "warning_closed",
        "reason": "fraudulent",
        "amount": 40000,
        "currency": "inr",
    }
    db.payments.update_one({"paymentId": "pi_schema"}, {"$set": {"dispute": {**dispute, "createdAt": now()}}})
    return "pi_schema"


def test_a_payment_and_its_statistics_answer_as_documented(client: TestClient, db: Any) -> None:
    who = seed(db)
    intent = paid_with_history(db, who)
    payment = validator("Payment")
    for user, role in ((who.customer, "customer"), (who.specialist, "specialist")):
        answer = client.get(f"/api/payments/{intent}", headers=bearer(user, role))
        assert answer.status_code == 200
        body = answer.json()
        assert body["refunds"] and body["statusHistory"] and body["status"] == "partially_refunded", body
        errors = [error.message for error in payment.iter_errors(body)]
        assert errors == [], (role, errors)
        page = client.get("/api/payments/history/customer", headers=bearer(user, role))
        assert [error.message for error in validator("Page").iter_errors(page.json())] == []
    assert "dispute" in client.get(f"/api/payments/{intent}", headers=bearer(who.specialist, "specialist")).json()

    figures = client.get("/api/payments/specialist/statistics", headers=bearer(who.specialist, "specialist")).json()
    assert figures["totals"] and figures["byMonth"] and figures["byService"], figures
    assert [error.message for error in validator("Statistics").iter_errors(figures)] == []
    bounded = client.get(
        "/api/payments/specialist/statistics?from=2020-01-01&to=2100-01-01",
        headers=bearer(who.specialist, "specialist"),
    ).json()
    assert [error.message for error in validator("Statistics").iter_errors(bounded)] == []
