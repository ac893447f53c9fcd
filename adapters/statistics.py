"""A specialist's earnings: one MongoDB aggregation over their paid payments (docs/api.md#what-the-payment-routes-do).

Per currency (never summed across currencies), per month and currency, per service and currency:
``count``, ``gross`` (sum of amounts), ``refunded`` (sum of ``amountRefunded``), ``disputed``
(amount under an open dispute), ``disputeLost`` (amount lost in disputes) and
``net = gross - refunded - disputeLost``, in minor units. A payment counts in the month it was
first paid (``paidAt``; ``createdAt`` for payments older than that field). The ``$match`` leads
with ``specialistId`` and ``paidAt`` so the ``specialist_paid`` index serves it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc
from domain.payments import DISPUTE_LOST, DISPUTED, PAID

FIGURES = ("count", "gross", "refunded", "disputed", "disputeLost")
SERVICE_KEY = {"serviceId": "$serviceId", "serviceName": "$serviceName", "currency": "$currency"}


def ensure_statistics_indexes(db: Database[Doc]) -> None:
    db.payments.create_index([("specialistId", ASCENDING), ("paidAt", ASCENDING)], name="specialist_paid")


def _amount_if(status: str) -> dict[str, Any]:
    """The disputed amount (else the payment's) of a payment in ``status``, 0 for any other."""
    return {"$cond": [{"$eq": ["$status", status]}, {"$ifNull": ["$dispute.amount", "$amount"]}, 0]}


def _group(key: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "$group": {
                "_id": key,
                "count": {"$sum": 1},
                "gross": {"$sum": "$amount"},
                "refunded": {"$sum": "$refunded"},
                "disputed": {"$sum": "$disputed"},
                "disputeLost": {"$sum": "$disputeLost"},
            }
        },
        {"$sort": {"_id": 1}},
    ]


def pipeline(specialist_id: Any, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    match: dict[str, Any] = {"specialistId": specialist_id}
    if start or end:
        match["paidAt"] = {**({"$gte": start} if start else {}), **({"$lt": end} if end else {})}
    match["status"] = {"$in": sorted(PAID)}
    return [
        {"$match": match},
        {
            "$project": {
                "currency": 1,
                "serviceId": 1,
                "serviceName": 1,
                "amount": 1,
                "refunded": {"$ifNull": ["$amountRefunded", 0]},
                "disputed": _amount_if(DISPUTED),
                "disputeLost": _amount_if(DISPUTE_LOST),
                "month": {"$dateToString": {"format": "%Y-%m", "date": {"$ifNull": ["$paidAt", "$createdAt"]}}},
            }
        },
        {
            "$facet": {
                "totals": _group({"currency": "$currency"}),
                "byMonth": _group({"month": "$month", "currency": "$currency"}),
                "byService": _group(
                    {"serviceId": "$serviceId", "serviceName": "$serviceName", "currency": "$currency"}
                ),
            }
        },
    ]


def _row(doc: dict[str, Any]) -> dict[str, Any]:
    figures = {name: int(doc.get(name) or 0) for name in FIGURES}
    figures["net"] = figures["gross"] - figures["refunded"] - figures["disputeLost"]
    return {**doc["_id"], **figures}


class MongoStatistics:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

    def earnings(self, specialist_id: Any, start: datetime | None, end: datetime | None) -> dict[str, list[Any]]:
        """``totals``, ``byMonth`` and ``byService`` rows for one specialist's paid payments in [start, end)."""
        [facets] = list(self.collection.aggregate(pipeline(specialist_id, start, end)))
        return {name: [_row(doc) for doc in rows] for name, rows in facets.items()}
