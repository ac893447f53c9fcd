"""``SuccessFacts`` on MongoDB: narrow reads of ``payments`` and ``stripe_events`` over a time range.

Each range is one indexed clause (``$or`` of them for payments, each served by its own index on
MongoDB), and only the fields the arithmetic needs come back (docs/success-metrics.md). The
reads decide nothing, so they may go to a secondary.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.read_preferences import ReadPreference

from adapters.mongo import Doc
from domain.success_metrics import FAILED, WEBHOOK, EventFacts, PaymentFacts, aware

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
    """``payments.updatedAt``; ``stripe_events.receivedAt`` has the payloads' TTL index ``payload_ttl``."""
    db.payments.create_index([("updatedAt", ASCENDING)], name="updated_at")


def payment_query(start: datetime, end: datetime) -> dict[str, Any]:
    """Payments written since ``start``: every write sets ``updatedAt``, so a payment created, paid,
    activated or failed in the window is among them (the arithmetic places each by its own time).
    One indexed range rather than an ``$or`` of four: the same answer, one index read."""
    return {"updatedAt": {"$gte": start}}


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


class MongoMetricSnapshots:
    """``MetricSnapshots`` in ``success_metrics``: one document per window, the measurement as JSON text
    (service ids and currencies are keys in it, which MongoDB field names need not be able to hold)."""

    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.success_metrics

    def load(self, window: str) -> tuple[datetime, dict[str, Any]] | None:
        doc = self.collection.find_one({"_id": window, "result": {"$type": "string"}}, {"measuredAt": 1, "result": 1})
        if doc is None:
            return None
        return aware(doc["measuredAt"]), json.loads(doc["result"])

    def claim(self, window: str, holder: str, now: datetime, lease: timedelta) -> bool:
        try:
            done = self.collection.update_one(
                {"_id": window, "$or": [{"claimUntil": None}, {"claimUntil": {"$lte": now}}]},
                {"$set": {"claimHolder": holder, "claimUntil": now + lease}},
                upsert=True,
            )
        except DuplicateKeyError:  # the window's document exists, claimed by another: the upsert lost
            return False
        return done.modified_count == 1 or done.upserted_id is not None

    def save(self, window: str, measured_at: datetime, result: Mapping[str, Any]) -> None:
        """Kept unless a newer measurement is (two processes may finish out of order); the claim let go."""
        fields = {"measuredAt": measured_at, "result": json.dumps(result), "claimUntil": None}
        with contextlib.suppress(DuplicateKeyError):  # the upsert found a newer one there
            self.collection.update_one(
                {"_id": window, "$or": [{"measuredAt": None}, {"measuredAt": {"$lt": measured_at}}]},
                {"$set": fields},
                upsert=True,
            )
