"""Payments as spreadsheet rows: the export columns, amounts in major units, cells no spreadsheet runs.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (``=HYPERLINK(…)`` in a service name would run on the accountant's
machine), so such a cell gets a leading ``'``, which they show as text. Quoting (commas, quotes,
newlines) is the ``csv`` module's, RFC 4180 style.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from domain.money import major

CUSTOMER_COLUMNS = (
    "paymentId",
    "createdAt",
    "paidAt",
    "serviceName",
    "serviceType",
    "status",
    "currency",
    "amount",
    "amountRefunded",
)
#: Accounting's export: the customer's columns and who paid whom, refunds, disputes and reviews.
ADMIN_COLUMNS = (
    *CUSTOMER_COLUMNS,
    "customerId",
    "customerEmail",
    "specialistId",
    "refunds",
    "disputeStatus",
    "reviewRequired",
)
#: The statistics' ``byMonth`` rows; money columns in major units.
STATISTICS_COLUMNS = ("month", "currency", "count", "gross", "refunded", "disputed", "disputeLost", "net")
_STATISTICS_MONEY = frozenset({"gross", "refunded", "disputed", "disputeLost", "net"})

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(cell: str) -> str:
    """``cell`` as text a spreadsheet shows and never runs."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def moment(value: Any) -> str:
    """A date as ISO 8601 UTC with milliseconds (as the API answers it); empty when there is none."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def amount(value: Any, currency: str) -> str:
    """Minor units as major units; empty for anything that is not a whole number (never a failed export)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return ""
    return major(value, currency)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def customer_row(doc: Mapping[str, Any]) -> list[str]:
    """One payment in ``CUSTOMER_COLUMNS`` order."""
    currency = _text(doc.get("currency")).upper()
    return [
        _text(doc.get("paymentId")),
        moment(doc.get("createdAt")),
        moment(doc.get("paidAt")),
        _text(doc.get("serviceName")),
        _text(doc.get("serviceType")),
        _text(doc.get("status")),
        currency,
        amount(doc.get("amount"), currency),
        amount(doc.get("amountRefunded") or 0, currency),
    ]


def admin_row(doc: Mapping[str, Any]) -> list[str]:
    """One payment in ``ADMIN_COLUMNS`` order: ``refunds`` is their count, ``reviewRequired`` the reason."""
    dispute, review, refunds = doc.get("dispute"), doc.get("reviewRequired"), doc.get("refunds")
    return [
        *customer_row(doc),
        _text(doc.get("customerId")),
        _text(doc.get("customerEmail")),
        _text(doc.get("specialistId")),
        str(len(refunds) if isinstance(refunds, list) else 0),
        _text(dispute.get("status")) if isinstance(dispute, Mapping) else "",
        _text(review.get("reason")) if isinstance(review, Mapping) else "",
    ]


def statistics_row(row: Mapping[str, Any]) -> list[str]:
    """One ``byMonth`` row of the statistics in ``STATISTICS_COLUMNS`` order."""
    currency = _text(row.get("currency")).upper()
    return [
        amount(row.get(name), currency) if name in _STATISTICS_MONEY else _text(row.get(name))
        for name in STATISTICS_COLUMNS
    ]


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV lines (``\\r\\n``), every cell neutralised and quoted where it must be."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([neutral(cell) for cell in row] for row in rows)
    return out.getvalue()


def filename(kind: str, day: date, extension: str) -> str:
    """``payments-20261101.csv``: what the download is saved as."""
    return f"{kind}-{day:%Y%m%d}.{extension}"
