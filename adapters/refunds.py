"""Refunds on the ``payments`` document: requests reserved, Stripe refunds linked, each counted once.

A payment's ``refunds[]`` holds one entry per refund: our request (``refundRequestId``), Stripe's
refund (``id``, ``re_…``), or both once linked. ``refundReserved`` is what pending requests hold
back, ``amountRefunded`` the sum of succeeded refunds. Every write is one conditional update, so
two requests, a retry, the actor and a webhook can race and each refund is still counted once.

A ``failed`` entry is final: no writer moves it again (``domain.refunds.reported``). What a request
holds leaves ``refundReserved`` once (``released``), when it is counted or when it fails, whoever
sees that first. ``finished`` is False from an outcome (counted or failed) until what follows it
(the payment's status, the emails, the enrollment) is done; the stale-work sweep finishes the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now
from domain.payments import Payment, Refund
from domain.refunds import FAILED, PENDING, SUCCEEDED


def ensure_refund_indexes(db: Database[Doc]) -> None:
    db.payments.create_index([("refunds.status", ASCENDING), ("refunds.createdAt", ASCENDING)], name="refund_status")
    db.payments.create_index(
        [("refunds.finished", ASCENDING), ("refunds.updatedAt", ASCENDING)],
        name="refund_unfinished",
        partialFilterExpression={"refunds.finished": False},
    )
    db.payments.create_index([("chargeId", ASCENDING)], name="charge", sparse=True)


#: An entry whose hold is still to give back. Entries older than the ``released`` flag gave it back when they failed.
_UNRELEASED: list[Doc] = [{"released": False}, {"released": {"$exists": False}, "status": {"$ne": FAILED}}]


def _free(at: Any) -> list[Doc]:
    """A request no run holds now (never claimed, or its lease ran out)."""
    return [{"claimUntil": None}, {"claimUntil": {"$lte": at}}]


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
        "released": False,
        "createdAt": at,
        "updatedAt": at,
        **fields,
    }


#: How long a run holds a refund request it is carrying out: longer than the refunds actor's time
#: limit (``workers.actors.REFUND_TIME_LIMIT_MS``), so a run still calling Stripe is never overtaken.
REFUND_LEASE = timedelta(minutes=3)


class MongoRefunds:
    def __init__(self, db: Database[Doc], over: Callable[[str], bool] | None = None) -> None:
        """``over(holder)``: whether the run holding a request's claim is known over (see ``claim``)."""
        self.collection: Collection[Doc] = db.payments
        self.over = over

    def reserve(
        self,
        payment: Payment,
        request_id: str,
        amount: int,
        reason: str | None,
        note: str | None,
        requested_by: dict[str, Any],
        *,
        whole_charge: bool = False,
        resolving: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a request and hold its amount, if nobody changed the payment's refunds since it was read.

        ``whole_charge``: Stripe is asked for the rest of the charge (no amount), whatever it took;
        ``amount`` is only what the request holds meanwhile. ``resolving``: the review this request
        resolves (``reviewResolved``), in the same write, refused if the review was resolved first.
        """
        at = now()
        entry = _entry(
            payment, amount, PENDING, reason, at, refundRequestId=request_id, note=note, requestedBy=requested_by
        )
        if whole_charge:
            entry["wholeCharge"] = True
        review: Doc = {} if resolving is None else {"reviewRequired.reason": resolving["reason"]}
        resolved: Doc = {} if resolving is None else {"reviewResolved": dict(resolving)}
        done = self.collection.update_one(
            {
                **review,
                "_id": payment.record_id,
                "status": payment.status,
                "amountRefunded": _same(payment.amount_refunded),
                "refundReserved": _same(payment.refund_reserved),
                "dispute.status": payment.dispute.status if payment.dispute else None,  # no dispute since read
                "refunds.refundRequestId": {"$ne": request_id},  # a request id is recorded once
            },
            {
                "$push": {"refunds": entry},
                "$set": {"refundReserved": payment.refund_reserved + amount, "updatedAt": at, **resolved},
                **({"$unset": {"reviewRequired": ""}} if resolving is not None else {}),
            },
        )
        return done.modified_count == 1

    def claim(self, payment: Payment, request_id: str, holder: str | None) -> bool:
        """Hold a pending request for one run (``holder``) before it calls Stripe; False while another run holds it.

        A claim is taken over once its lease ran out, or at once when the run holding it is known
        over (``over``: its worker dead, or its message no longer held by it); never merely because
        the same message came back, since a live worker cut off for a moment may still be calling Stripe.
        """
        at = now()

        def take(free: list[Doc]) -> bool:
            mine = {"refundRequestId": request_id, "status": PENDING, "id": None, "$or": free}
            done = self.collection.update_one(
                {"_id": payment.record_id, "refunds": {"$elemMatch": mine}},
                {"$set": {"refunds.$.claimHolder": holder, "refunds.$.claimUntil": at + REFUND_LEASE}},
            )
            return done.modified_count == 1

        if take(_free(at)):
            return True
        doc = self.collection.find_one({"_id": payment.record_id}, {"refunds": 1}) if self.over else None
        held = [e for e in (doc or {}).get("refunds") or () if e.get("refundRequestId") == request_id]
        other = held[0].get("claimHolder") if held else None
        if self.over is None or not isinstance(other, str) or not self.over(other):
            return False
        return take([{"claimHolder": other, "claimUntil": held[0].get("claimUntil")}])  # the very claim seen

    def link(self, payment: Payment, request_id: str, stripe_id: str, status: str) -> None:
        """Name Stripe's refund on our request (the actor and a webhook may both do it); a failed request stays failed.

        A status reported as failed is recorded here, its hold given back by ``fail``.
        """
        at, mine = now(), {"refundRequestId": request_id, "id": None}
        done = self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": {**mine, "status": {"$ne": FAILED}}}},
            {"$set": {"refunds.$.id": stripe_id, "refunds.$.status": status, "refunds.$.updatedAt": at}},
        )
        if done.modified_count == 0:  # failed already: only named, so later events find it
            self.collection.update_one(
                {"_id": payment.record_id, "refunds": {"$elemMatch": {**mine, "status": FAILED}}},
                {"$set": {"refunds.$.id": stripe_id, "refunds.$.updatedAt": at}},
            )

    def add(self, payment: Payment, stripe_id: str, amount: int, status: str, reason: str | None) -> None:
        """Record a refund no request of ours asked for (made in Stripe's dashboard), once."""
        entry = _entry(payment, amount, status, reason, now(), id=stripe_id)
        self.collection.update_one(
            {"_id": payment.record_id, "refunds.id": {"$ne": stripe_id}}, {"$push": {"refunds": entry}}
        )

    def count(self, payment: Payment, stripe_id: str, amount: int, reserved: int) -> bool:
        """Add a succeeded refund to ``amountRefunded`` once (releasing what its request held); True if now.

        The entry keeps the amount counted (what a later failure takes out) and is left unfinished.
        """
        unreleased = {"counted": {"$ne": True}, "released": {"$ne": True}, "status": {"$ne": FAILED}}
        done = self.collection.update_one(
            # A refund Stripe reported failed is final: a late "succeeded" about it counts nothing.
            {"_id": payment.record_id, "refunds": {"$elemMatch": {"id": stripe_id, **unreleased}}},
            {
                "$set": {
                    "refunds.$.counted": True,
                    "refunds.$.released": True,
                    "refunds.$.finished": False,
                    "refunds.$.amount": amount,
                    "refunds.$.status": SUCCEEDED,
                    "refunds.$.updatedAt": now(),
                },
                "$inc": {"amountRefunded": amount, "refundReserved": -reserved},
            },
        )
        return done.modified_count == 1

    def set_status(self, payment: Payment, stripe_id: str, status: str) -> None:
        """Stripe's status for a refund not succeeded yet: ``pending``, ``requires_action``; never out of failed."""
        still = {"id": stripe_id, "counted": {"$ne": True}, "status": {"$ne": FAILED}}
        self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": still}},
            {"$set": {"refunds.$.status": status, "refunds.$.updatedAt": now()}},
        )

    def fail(self, payment: Payment, entry: Refund, reason: str) -> bool:
        """Mark a refund failed (final) and give back what it held, once; True if this call gave it back.

        Decided from the entry's state in the document, not as read: one not counted gives back
        what its request held, unless that was done already (whoever saw the failure first); one
        counted as succeeded that fails later is taken out of ``amountRefunded``. A count racing
        this finds the entry failed or released, or is itself taken out by the second write.
        """
        match: Doc = {"refundRequestId": entry.request_id} if entry.request_id else {"id": entry.stripe_id}
        at = now()
        failed = {
            "refunds.$.status": FAILED,
            "refunds.$.released": True,
            "refunds.$.finished": False,
            "refunds.$.failureReason": reason,
            "refunds.$.updatedAt": at,
        }
        held = {"counted": {"$ne": True}, "$or": _UNRELEASED}
        done = self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": {**match, **held}}},
            {"$set": failed, "$inc": {"refundReserved": -entry.amount if entry.request_id else 0}},
        )
        if done.modified_count == 1:
            return True
        # Counted: what was counted (Stripe's amount, kept by ``count``) comes out, read from the document.
        doc = self.collection.find_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": {**match, "counted": True}}}, {"refunds": 1}
        )
        key, value = next(iter(match.items()))
        counted = [e for e in (doc or {}).get("refunds") or () if e.get(key) == value and e.get("counted") is True]
        if not counted:
            return False
        amount = int(counted[0].get("amount") or 0)
        done = self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": {**match, "counted": True, "amount": amount}}},
            {"$set": {**failed, "refunds.$.counted": False}, "$inc": {"amountRefunded": -amount}},
        )
        return done.modified_count == 1

    def finished(self, payment: Payment, entry: Refund) -> None:
        """Record that everything after this outcome was done, if the entry still has that outcome."""
        match: Doc = {"refundRequestId": entry.request_id} if entry.request_id else {"id": entry.stripe_id}
        same = {**match, "finished": False, "status": entry.status, "counted": entry.counted}
        self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": same}}, {"$set": {"refunds.$.finished": True}}
        )

    def unfinished(self, older_than: timedelta, limit: int = 200) -> list[tuple[str, str | None, str | None]]:
        """(intent id, request id, Stripe id) of outcomes whose follow-ups were left undone for ``older_than``."""
        cutoff = now() - older_than
        query = {"refunds": {"$elemMatch": {"finished": False, "updatedAt": {"$lte": cutoff}}}}
        found = []
        for doc in self.collection.find(query, {"paymentId": 1, "refunds": 1}, limit=limit):
            for entry in doc.get("refunds") or ():
                if entry.get("finished") is False and entry["updatedAt"] <= cutoff:
                    found.append((str(doc["paymentId"]), entry.get("refundRequestId"), entry.get("id")))
        return found

    def note_requeue(self, intent_id: str, request_id: str, older_than: timedelta) -> int | None:
        """Count one more requeue of a stale request; None if no run may take it now.

        None when another worker counted one within ``older_than`` (every worker sweeps), a run
        holds the request, or it is no longer pending; so a request goes back once per round.
        """
        at = now()
        mine = {
            "refundRequestId": request_id,
            "status": PENDING,
            "id": None,
            "$and": [{"$or": [{"requeuedAt": None}, {"requeuedAt": {"$lte": at - older_than}}]}, {"$or": _free(at)}],
        }
        doc = self.collection.find_one_and_update(
            {"paymentId": intent_id, "refunds": {"$elemMatch": mine}},
            {"$inc": {"refunds.$.requeues": 1}, "$set": {"refunds.$.requeuedAt": at}},
            projection={"refunds": 1},
            return_document=ReturnDocument.AFTER,
        )
        for entry in (doc or {}).get("refunds") or ():
            if entry.get("refundRequestId") == request_id:
                return int(entry.get("requeues") or 0)
        return None

    def abandon(self, payment: Payment, entry: Refund, reason: str) -> bool:
        """Fail a request no run could carry out and give back what it held; True if now.

        Only a request still pending with no Stripe refund and no run holding it: a run that
        claims it afterwards finds it failed and never calls Stripe.
        """
        at = now()
        mine = {
            "refundRequestId": entry.request_id,
            "status": PENDING,
            "id": None,
            "counted": {"$ne": True},
            "released": {"$ne": True},
            "$or": _free(at),
        }
        done = self.collection.update_one(
            {"_id": payment.record_id, "refunds": {"$elemMatch": mine}},
            {
                "$set": {
                    "refunds.$.status": FAILED,
                    "refunds.$.released": True,
                    "refunds.$.finished": False,
                    "refunds.$.failureReason": reason,
                    "refunds.$.updatedAt": at,
                },
                "$inc": {"refundReserved": -entry.amount},
            },
        )
        return done.modified_count == 1

    def stale_requests(self, older_than: timedelta, limit: int = 200) -> list[tuple[str, str]]:
        """(intent id, request id) of requests still ``pending`` with no Stripe refund, older than ``older_than``
        and not requeued within it."""
        cutoff = now() - older_than
        stale = {"status": PENDING, "id": None, "createdAt": {"$lte": cutoff}}
        query = {"refunds": {"$elemMatch": {**stale, "$or": [{"requeuedAt": None}, {"requeuedAt": {"$lte": cutoff}}]}}}
        found = []
        for doc in self.collection.find(query, {"paymentId": 1, "refunds": 1}, limit=limit):
            for entry in doc.get("refunds") or ():
                requeued = entry.get("requeuedAt")
                if (
                    entry.get("status") == PENDING
                    and entry.get("id") is None
                    and entry["createdAt"] <= cutoff
                    and (requeued is None or requeued <= cutoff)
                ):
                    found.append((str(doc["paymentId"]), str(entry["refundRequestId"])))
        return found
