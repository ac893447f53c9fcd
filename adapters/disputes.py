"""The dispute recorded on a ``payments`` document, written only over the version it was decided on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now
from domain.payments import Payment


class MongoDisputes:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

    def record(
        self, payment: Payment, dispute: Mapping[str, Any], event_at: datetime, before: str, flags: Mapping[str, bool]
    ) -> bool:
        """Store Stripe's ``dispute`` if the payment's dispute is still as read (``payment.dispute``).

        ``flags`` add facts an event tells (``fundsWithdrawn``, ``fundsReinstated``).
        """
        seen = payment.dispute
        match: dict[str, Any] = (
            {"dispute.id": seen.id, "dispute.status": seen.status, "dispute.eventAt": seen.event_at}
            if seen
            else {"dispute.id": None}
        )
        details = dispute.get("evidence_details")
        due = details.get("due_by") if isinstance(details, Mapping) else None
        created = dispute.get("created")
        fields = {
            "id": dispute.get("id"),
            "status": dispute.get("status"),
            "reason": dispute.get("reason"),
            "amount": dispute.get("amount"),
            "currency": str(dispute.get("currency") or "").upper() or None,
            "dueBy": datetime.fromtimestamp(due, UTC) if isinstance(due, int) else None,
            "eventAt": event_at,
            "statusBefore": before,
            "createdAt": datetime.fromtimestamp(created, UTC) if isinstance(created, int) else event_at,
            "updatedAt": now(),
            **flags,
        }
        done = self.collection.update_one(
            {"_id": payment.record_id, **match},
            {"$set": {**{f"dispute.{k}": v for k, v in fields.items()}, "updatedAt": now()}},
        )
        return done.modified_count == 1
