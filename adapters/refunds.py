"""Refunds on the ``payments`` document: requests reserved, Stripe refunds linked, each counted once.

A payment's ``refunds[]`` holds one entry per refund: our request (``refundRequestId``), Stripe's
refund (``id``, ``re_…``), or both once linked. ``refundReserved`` is what pending requests hold
back, ``amountRefunded`` the sum of succeeded refunds. Every write is one conditional update, so
two requests, a retry, the actor and a webhook can race and each refund is still counted once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now
from domain.payments import Payment, Refund
from domain.refunds import FAILED, PENDING, SUCCEEDED


def ensure_refund_indexes(db: Database[Doc]) -> None:
    db.payments.create_index([("refunds.status", ASCENDING), ("refunds.createdAt", ASCENDING)], name="refund_status")
    db.payments.create_index([("chargeId", ASCENDING)], name="charge", sparse=True)


def _same(amount: int) -> Any:
    """A filter for an amount as read: a field never written reads as 0."""
    return amount if amount else {"$in": [0, None]}


def _entry(payment: Payment, amount: int, status: str, reason: str | None, at: Any, **fields: Any) -> Doc:
    """One ``refunds[]`` entry, the same shape whether a request of ours or a refund Stripe made."""
    return {
        "refundRequestId": None,
        "id": None,
        "amount": amount,
        "currency": payment.currency,
        "status": status,
        "reason": reason,
        "note": None,
        "requestedBy": None,
        "counted": False,
        "createdAt": at,
        "updatedAt": at,
        **fields,
    }


#: How long a run holds a refund request it is carrying out: longer than the refunds actor's time
#: limit (``workers.actors.REFUND_TIME_LIMIT_MS``), so a run still calling Stripe is never overtaken.
REFUND_LEASE = timedelta(minutes=3)


class MongoRefunds:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

    def reserve(
        self,
        payment: Payment,
        request_id: str,
        amount: int,
        reason: str | None,
        note: str | None,
        requested_by: dict[str, Any],
    ) -> bool:
        """Record a request and hold its amount, if nobody changed the payment's refunds since it was read."""
        at = now()
        entry = _entry(
            payment, amount, PENDING, reason, at, refundRequestId=request_id, note=note, requestedBy=requested_by
        )
        done = self.collection.update_one(
            {
                "_id": payment.record_id,
                "status": payment.status,
                "amountRefunded": _same(payment.amount_refunded),
                "refundReserved": _same(payment.refund_reserved),
                "refunds.refundRequestId": {"$ne": request_id},  # a request id is recorded once
            },
            {
                "$push": {"refunds": entry},
                "$set": {"refundReserved": payment.refund_reserved + amount, "updatedAt": at},
            },
        )
        return done.modified_count == 1

    def claim(self, payment: Payment, request_id: str, holder: str | None) -> bool:
        """Hold a pending request for one run before it calls Stripe; False while another run holds it.

        The holder (the queue message's id) takes back at once a claim an earlier attempt of the
        same message left (its worker died); any other run waits for the lease to run out.
        """
        at = now()
        free: list[Doc] = [{"claimUntil": None}, {"claimUntil": {"$lte": at}}]
        if holder is not None:
            free.append({"claimHolder": holder})
        mine = {"refundRequestId": request_id, "status": PENDING, "id": None, "$or": free}
        done = self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": mine}},
            {"$set": {"refunds.$.claimHolder": holder, "refunds.$.claimUntil": at + REFUND_LEASE}},
        )
        return done.modified_count == 1

    def link(self, payment: Payment, request_id: str, stripe_id: str, status: str) -> None:
        """Name Stripe's refund on our request (the actor and a webhook may both do it)."""
        self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": {"refundRequestId": request_id, "id": None}}},
            {"$set": {"refunds.$.id": stripe_id, "refunds.$.status": status, "refunds.$.updatedAt": now()}},
        )

    def add(self, payment: Payment, stripe_id: str, amount: int, status: str, reason: str | None) -> None:
        """Record a refund no request of ours asked for (made in Stripe's dashboard), once."""
        entry = _entry(payment, amount, status, reason, now(), id=stripe_id)
        self.collection.update_one(
            {"_id": payment.record_id, "refunds.id": {"$ne": stripe_id}}, {"$push": {"refunds": entry}}
        )

    def count(self, payment: Payment, stripe_id: str, amount: int, reserved: int) -> bool:
        """Add a succeeded refund to ``amountRefunded`` once (releasing what its request held); True if now."""
        done = self.collection.update_one(
            {
                "_id": payment.record_id,
                # A refund Stripe reported failed is final: a late "succeeded" about it counts nothing.
                "refunds": {"$elemMatch": {"id": stripe_id, "counted": {"$ne": True}, "status": {"$ne": FAILED}}},
            },
            {
                "$set": {"refunds.$.counted": True, "refunds.$.status": SUCCEEDED, "refunds.$.updatedAt": now()},
                "$inc": {"amountRefunded": amount, "refundReserved": -reserved},
            },
        )
        return done.modified_count == 1

    def set_status(self, payment: Payment, stripe_id: str, status: str) -> None:
        """Stripe's status for a refund not (or no longer) succeeded: ``pending``, ``requires_action``."""
        self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": {"id": stripe_id, "counted": {"$ne": True}}}},
            {"$set": {"refunds.$.status": status, "refunds.$.updatedAt": now()}},
        )

    def fail(self, payment: Payment, entry: Refund, reason: str) -> bool:
        """Mark a request Stripe refused, or a refund that failed, and give its amount back; True if now.

        A pending request gives back what it held; a refund counted as succeeded that fails later
        is taken out of ``amountRefunded``. False when the entry changed since it was read.
        """
        match: dict[str, Any] = {"refundRequestId": entry.request_id} if entry.request_id else {"id": entry.stripe_id}
        if entry.counted:
            give_back = {"amountRefunded": -entry.amount}
        else:
            give_back = {"refundReserved": -entry.amount if entry.request_id else 0}
        at, counted = now(), entry.counted or {"$ne": True}
        still = {**match, "status": {"$ne": FAILED}, "counted": counted}
        done = self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": still}},
            {
                "$set": {
                    "refunds.$.status": FAILED,
                    "refunds.$.counted": False,
                    "refunds.$.failureReason": reason,
                    "refunds.$.updatedAt": at,
                },
                "$inc": give_back,
            },
        )
        return done.modified_count == 1

    def stale_requests(self, older_than: timedelta, limit: int = 200) -> list[tuple[str, str]]:
        """(intent id, request id) of requests still ``pending`` with no Stripe refund, older than ``older_than``."""
        cutoff = now() - older_than
        query = {"refunds": {"$elemMatch": {"status": PENDING, "id": None, "createdAt": {"$lte": cutoff}}}}
        found = []
        for doc in self.collection.find(query, {"paymentId": 1, "refunds": 1}, limit=limit):
            for entry in doc.get("refunds") or ():
                if entry.get("status") == PENDING and entry.get("id") is None and entry["createdAt"] <= cutoff:
                    found.append((str(doc["paymentId"]), str(entry["refundRequestId"])))
        return found
