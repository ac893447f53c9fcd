"""``SuccessFacts`` on MongoDB: narrow reads of ``payments`` and ``stripe_events`` over a time range.

Each range is one indexed clause (``$or`` of them for payments, each served by its own index on
MongoDB), and only the fields the arithmetic needs come back (docs/success-metrics.md). The
reads decide nothing, so they may go to a secondary.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.read_preferences import ReadPreference

from adapters.mongo import Doc
from domain.success_metrics import FAILED, WEBHOOK, EventFacts, PaymentFacts

PAYMENT_FIELDS = {
    "_id": 0,
    "createdAt": 1,
    "status": 1,
    "amount": 1,
    "currency": 1,
    "paidAt": 1,
    "activatedAt": 1,
    "updatedAt": 1,
    "amountRefunded": 1,
    "dispute.amount": 1,
    "serviceId": 1,
    "serviceName": 1,
}
EVENT_FIELDS = {"_id": 0, "receivedAt": 1, "processedAt": 1, "source": 1}


def ensure_success_metrics_indexes(db: Database[Doc]) -> None:
    """One index per time the metrics select by (``createdAt`` has ``created_recent`` already, and
    ``stripe_events.receivedAt`` the payloads' TTL index ``payload_ttl``)."""
    db.payments.create_index([("paidAt", ASCENDING)], name="paid_at")
    db.payments.create_index([("activatedAt", ASCENDING)], name="activated_at")
    db.payments.create_index([("status", ASCENDING), ("updatedAt", ASCENDING)], name="status_updated")


def payment_query(start: datetime, end: datetime) -> dict[str, Any]:
    span = {"$gte": start, "$lt": end}
    return {
        "$or": [
            {"createdAt": span},
            {"paidAt": span},
            {"activatedAt": span},
            {"status": {"$in": sorted(FAILED)}, "updatedAt": span},
        ]
    }


def payment_facts(doc: Mapping[str, Any]) -> PaymentFacts:
    status = str(doc.get("status") or "")
    dispute = doc.get("dispute")
    lost = 0
    if status == "dispute_lost":
        lost = int((dispute.get("amount") if isinstance(dispute, Mapping) else None) or doc.get("amount") or 0)
    service = doc.get("serviceId")
    return PaymentFacts(
        created_at=doc.get("createdAt"),
        status=status,
        amount=int(doc.get("amount") or 0),
        currency=str(doc.get("currency") or "").upper(),
        paid_at=doc.get("paidAt"),
        activated_at=doc.get("activatedAt"),
        outcome_at=doc.get("updatedAt") if status in FAILED else None,
        amount_refunded=int(doc.get("amountRefunded") or 0),
        dispute_lost=lost,
        service_id=None if service is None else str(service),
        service_name=doc.get("serviceName"),
    )


class MongoSuccessFacts:
    """The facts the success metrics need, read from ``payments`` and ``stripe_events``."""

    def __init__(self, db: Database[Doc]) -> None:
        reads = db.with_options(read_preference=ReadPreference.SECONDARY_PREFERRED)
        self.payments_collection: Collection[Doc] = reads.payments
        self.events_collection: Collection[Doc] = reads.stripe_events

    def payments(self, start: datetime, end: datetime) -> list[PaymentFacts]:
        found = self.payments_collection.find(payment_query(start, end), PAYMENT_FIELDS, batch_size=10_000)
        return [payment_facts(doc) for doc in found]

    def events(self, start: datetime, end: datetime) -> list[EventFacts]:
        found = self.events_collection.find(
            {"receivedAt": {"$gte": start, "$lt": end}}, EVENT_FIELDS, batch_size=10_000
        )
        return [
            EventFacts(doc["receivedAt"], doc.get("processedAt"), str(doc.get("source") or WEBHOOK))
            for doc in found
            if isinstance(doc.get("receivedAt"), datetime)
        ]
