"""``usecases.exports.PaymentExports`` on MongoDB: cursors that fetch ``BATCH`` payments per round trip.

The customer's export walks the ``customer_recent`` index (``customerId``, ``createdAt`` desc),
the period export ``created_recent`` (``createdAt`` desc), in the index's order: MongoDB sorts
nothing in memory and sends each batch as it reads it, and the driver asks for the next with
``getMore`` as the export is consumed. (The history's tie-break on ``_id`` is left out on purpose:
with it, MongoDB would sort every matching payment before the first batch.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.database import Database

from adapters.mongo import Doc
from usecases.ports import Period

#: Payments per ``getMore`` (a few hundred KB of BSON).
BATCH = 500
NEWEST_FIRST = [("createdAt", DESCENDING)]


def _created(period: Period) -> dict[str, Any]:
    bounds = {**({"$gte": period.start} if period.start else {}), **({"$lt": period.end} if period.end else {})}
    return {"createdAt": bounds} if bounds else {}


class MongoPaymentExports:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

    def _cursor(self, query: dict[str, Any]) -> Cursor[Doc]:
        return self.collection.find(query).sort(NEWEST_FIRST).batch_size(BATCH)

    def of_customer(self, customer_id: Any, status: str | None, period: Period) -> Iterator[Doc]:
        query: dict[str, Any] = {"customerId": customer_id, **_created(period)}
        if status:
            query["status"] = status
        return self._cursor(query)

    def created_in(self, period: Period) -> Iterator[Doc]:
        return self._cursor(_created(period))
