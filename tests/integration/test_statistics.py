"""GET /api/payments/specialist/statistics against MongoDB: the aggregation equals sums made here (issue 8)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from adapters.indexes import ensure_all_indexes
from adapters.settings import Settings
from tests.integration.api_support import Seeded, api_settings, bearer, client_of, seed

STATUSES = ["completed", "partially_refunded", "refunded", "disputed", "dispute_lost", "pending", "failed", "canceled"]


@pytest.fixture
def client(settings: Settings, db: Any) -> Iterator[TestClient]:
    with client_of(api_settings(settings), db) as c:
        yield c


def seeded_payments(db: Any, who: Seeded, n: int = 120) -> list[dict[str, Any]]:
    """Payments of one specialist over three services, four months and two currencies; some of another one."""
    ensure_all_indexes(db)
    rng = random.Random(3)
    services = [(ObjectId(), f"Course {i}") for i in range(3)]
    docs = []
    for i in range(n):
        status = rng.choice(STATUSES)
        amount = rng.choice([49900, 99900, 2500])
        refunded = {"partially_refunded": amount // 3, "refunded": amount}.get(status, 0)
        service_id, service_name = rng.choice(services)
        doc: dict[str, Any] = {
            "paymentId": f"pi_stats_{i}",
            "specialistId": who.specialist if i % 10 else ObjectId(),  # every tenth is another specialist's
            "serviceId": service_id,
            "serviceName": service_name,
            "currency": rng.choice(["INR", "USD"]),
            "amount": amount,
            "amountRefunded": refunded,
            "status": status,
            "paidAt": datetime(2026, rng.randint(8, 11), rng.randint(1, 28), tzinfo=UTC),
            "createdAt": datetime(2026, 8, 1, tzinfo=UTC),
        }
        if status in ("disputed", "dispute_lost"):
            doc["dispute"] = {"id": f"dp_{i}", "amount": amount - 100, "status": "needs_response"}
        docs.append(doc)
    db.payments.insert_many(docs)
    return docs


def expected(
    docs: list[dict[str, Any]], who: Seeded, start: datetime | None = None, end: datetime | None = None
) -> Any:
    """The same figures, summed here document by document."""
    paid = {"completed", "partially_refunded", "refunded", "disputed", "dispute_lost"}
    keys = {
        "totals": lambda d: (("currency", d["currency"]),),
        "byMonth": lambda d: (("month", d["paidAt"].strftime("%Y-%m")), ("currency", d["currency"])),
        "byService": lambda d: (
            ("serviceId", str(d["serviceId"])),
            ("serviceName", d["serviceName"]),
            ("currency", d["currency"]),
        ),
    }
    out: dict[str, Any] = {}
    for name, key in keys.items():
        rows: dict[Any, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(("count", "gross", "refunded", "disputed", "disputeLost"), 0)
        )
        for d in docs:
            if d["specialistId"] != who.specialist or d["status"] not in paid:
                continue
            if (start and d["paidAt"] < start) or (end and d["paidAt"] >= end):
                continue
            row = rows[key(d)]
            row["count"] += 1
            row["gross"] += d["amount"]
            row["refunded"] += d["amountRefunded"]
            row["disputed"] += d["dispute"]["amount"] if d["status"] == "disputed" else 0
            row["disputeLost"] += d["dispute"]["amount"] if d["status"] == "dispute_lost" else 0
        out[name] = sorted(
            ({**dict(k), **v, "net": v["gross"] - v["refunded"] - v["disputeLost"]} for k, v in rows.items()),
            key=lambda r: tuple(str(r[f]) for f in ("month", "serviceId", "serviceName", "currency") if f in r),
        )
    return out


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        rows, key=lambda r: tuple(str(r[f]) for f in ("month", "serviceId", "serviceName", "currency") if f in r)
    )


def test_the_figures_equal_sums_made_document_by_document(client: TestClient, db: Any) -> None:
    """totals, byMonth and byService per currency: count, gross, refunded, disputed, disputeLost, net."""
    who = seed(db)
    docs = seeded_payments(db, who)
    answer = client.get("/api/payments/specialist/statistics", headers=bearer(who.specialist, "specialist"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    want = expected(docs, who)
    assert body["specialistId"] == str(who.specialist) and (body["from"], body["to"]) == (None, None)
    for name in ("totals", "byMonth", "byService"):
        assert ordered(body[name]) == want[name], name
    assert {r["currency"] for r in body["totals"]} == {"INR", "USD"}  # never summed across currencies


def test_from_and_to_bound_the_payment_date(client: TestClient, db: Any) -> None:
    """from is inclusive, to a date means through that day; an admin names the specialist."""
    who = seed(db)
    docs = seeded_payments(db, who)
    query = {"from": "2026-09-01", "to": "2026-10-31", "specialistId": str(who.specialist)}
    answer = client.get("/api/payments/specialist/statistics", params=query, headers=bearer(who.admin, "admin"))
    assert answer.status_code == 200, answer.text
    want = expected(docs, who, datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert ordered(answer.json()["byMonth"]) == want["byMonth"]
    assert {r["month"] for r in answer.json()["byMonth"]} <= {"2026-09", "2026-10"}
    assert answer.json()["to"] == "2026-11-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("role", "params", "status", "code"),
    [
        ("customer", {}, 403, "forbidden"),
        ("specialist", {"specialistId": str(ObjectId())}, 403, "forbidden"),
        ("admin", {}, 422, "validation_error"),
        ("specialist", {"from": "2026-13-01"}, 422, "validation_error"),
        ("specialist", {"from": "2026-11-02", "to": "2026-11-01"}, 422, "validation_error"),
    ],
)
def test_who_may_see_and_bad_bounds(
    client: TestClient, db: Any, role: str, params: dict[str, str], status: int, code: str
) -> None:
    """Customers are refused, a specialist sees only their own, an admin names one; bad dates are 422."""
    who = seed(db)
    user = {"customer": who.customer, "specialist": who.specialist, "admin": who.admin}[role]
    answer = client.get("/api/payments/specialist/statistics", params=params, headers=bearer(user, role))
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_the_query_leads_with_an_indexed_field(db: Any) -> None:
    """The aggregation's $match starts with specialistId and paidAt, which the specialist_paid index covers."""
    from adapters.statistics import pipeline

    ensure_all_indexes(db)
    match = pipeline(ObjectId(), datetime(2026, 1, 1, tzinfo=UTC), None)[0]["$match"]
    assert list(match)[:2] == ["specialistId", "paidAt"]
    index = db.payments.index_information()["specialist_paid"]
    assert [field for field, _ in index["key"]] == ["specialistId", "paidAt"]
