"""pymongo repositories for this service's collections (docs/data.md#collections-and-indexes).

Writes that matter use majority write concern and decisions read from the primary, so a
failover never hands a decision a stale document.
"""

from __future__ import annotations

from collections.abc import Collection as Collection_
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from domain.activation import ACTIVATABLE, Claim
from domain.payments import COMPLETED, Dispute, Party, Payment, Refund, holds_slot
from domain.refunds import FAILED as REFUND_FAILED

Doc = dict[str, Any]

#: Ends the payment's hold on the customer's open slot (see ``adapters.checkout``).
FREE_SLOT = {"openKey": None}

#: Stored event payloads hold customer data; Stripe retries for 3 days and keeps events 30.
EVENT_RETENTION = timedelta(days=90)


def now() -> datetime:
    # BSON dates have millisecond precision; trimming here keeps read-back values equal.
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def connect(uri: str, db_name: str, timeout_ms: int = 5000) -> Database[Doc]:
    """A database handle with majority writes and primary reads; connects lazily."""
    client: MongoClient[Doc] = MongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        appname="payments-pipeline",
    )
    return client.get_database(
        db_name,
        write_concern=WriteConcern(w="majority", j=True),
        read_preference=ReadPreference.PRIMARY,
    )


def ensure_indexes(db: Database[Doc]) -> None:
    """Create this service's indexes; safe to run at every start."""
    db.payments.create_index(
        [("paymentId", ASCENDING)],
        unique=True,
        name="paymentId_unique",
        partialFilterExpression={"paymentId": {"$type": "string"}},
    )
    db.payments.create_index([("customerId", ASCENDING), ("createdAt", DESCENDING)], name="customer_recent")
    # The accounting export's period (adapters.exports); without it each export would scan every payment.
    db.payments.create_index([("createdAt", DESCENDING)], name="created_recent")
    db.stripe_events.create_index([("status", ASCENDING), ("receivedAt", ASCENDING)], name="status_received")
    db.stripe_events.create_index([("status", ASCENDING), ("lastAttemptAt", ASCENDING)], name="status_last_attempt")
    db.payments.create_index(
        [("status", ASCENDING), ("activatedAt", ASCENDING), ("updatedAt", ASCENDING)], name="awaiting_activation"
    )
    db.stripe_events.create_index(
        [("receivedAt", ASCENDING)], name="payload_ttl", expireAfterSeconds=int(EVENT_RETENTION.total_seconds())
    )
    db.job_failures.create_index([("state", ASCENDING), ("lastFailedAt", DESCENDING)], name="state_recent")
    db.job_failures.create_index([("messageId", ASCENDING)], name="message")


def _payment(doc: Mapping[str, Any]) -> Payment:
    return Payment(
        record_id=doc["_id"],
        intent_id=doc["paymentId"],
        status=doc["status"],
        amount=int(doc["amount"]),
        currency=doc["currency"],
        last_event_at=doc.get("lastEventAt"),
        customer=Party(doc.get("customerId"), doc.get("customerEmail"), doc.get("customerName")),
        specialist=Party(doc.get("specialistId"), doc.get("specialistEmail"), doc.get("specialistName")),
        service_id=doc.get("serviceId"),
        service_type=doc.get("serviceType", ""),
        service_name=doc.get("serviceName", ""),
        enrollment_id=doc.get("enrollmentId"),
        activated_at=doc.get("activatedAt"),
        review=(doc.get("reviewRequired") or {}).get("reason"),
        paid_at=doc.get("paidAt"),
        amount_received=doc.get("amountReceived"),
        amount_refunded=int(doc.get("amountRefunded") or 0),
        refund_reserved=int(doc.get("refundReserved") or 0),
        refunds=tuple(_refund(entry) for entry in doc.get("refunds") or () if isinstance(entry, Mapping)),
        charge_id=doc.get("chargeId"),
        dispute=_dispute(doc.get("dispute")),
    )


def _dispute(doc: Any) -> Dispute | None:
    if not isinstance(doc, Mapping) or not doc.get("id"):
        return None
    return Dispute(str(doc["id"]), str(doc.get("status")), doc["eventAt"], str(doc.get("statusBefore") or COMPLETED))


def _refund(entry: Mapping[str, Any]) -> Refund:
    requester = entry.get("requestedBy")
    return Refund(
        amount=int(entry.get("amount") or 0),
        status=str(entry.get("status")),
        request_id=entry.get("refundRequestId"),
        stripe_id=entry.get("id"),
        counted=bool(entry.get("counted")),
        reason=entry.get("reason") or entry.get("note"),
        requester_email=requester.get("email") if isinstance(requester, Mapping) else None,
        # Entries older than the flag: a failed one was given back when it failed.
        released=bool(entry.get("released", entry.get("status") == REFUND_FAILED)),
        failure_reason=entry.get("failureReason"),
        whole_charge=bool(entry.get("wholeCharge")),
    )


def _move(target: str, event_id: str | None, event_at: datetime | None, charge_id: str | None) -> Doc:
    """The update that moves a payment to ``target`` (the filter is the caller's condition)."""
    at = now()
    changes: dict[str, Any] = {"status": target, "updatedAt": at}
    if event_at is not None:  # an event's time, or when Stripe was asked (confirm-payment, reconcile)
        changes["lastEventAt"] = event_at
    if event_id is not None:
        changes.update(stripeEventId=event_id, webhookReceivedAt=at)
    if charge_id is not None:
        changes["chargeId"] = charge_id  # disputes and refunds may name only the charge
    if not holds_slot(target):
        changes.update(FREE_SLOT)
    update: Doc = {"$set": changes, "$push": {"statusHistory": {"status": target, "at": at, "eventId": event_id}}}
    if target == COMPLETED:
        update["$min"] = {"paidAt": at}  # the first completion; the refund window counts from it
    return update


def _object_id(value: str | None) -> ObjectId | None:
    """The ObjectId a string names, only if it is that ObjectId's own spelling (``str`` gives it back)."""
    if value is None or not ObjectId.is_valid(value):
        return None
    oid = ObjectId(value)
    return oid if str(oid) == value else None


def _claimed(claim: Claim) -> Doc | None:
    """Fields a payment must hold to be the one ``claim`` pays for, as a filter; None if none can.

    Stricter than ``domain.activation.intent_mismatch``, never looser: ids are matched as the
    ObjectIds they spell, so a payment matching here has ``str(field) == claimed``; a payment
    that stores ids another way simply does not match, and the caller's check decides.
    """
    ids = {"_id": claim.record_id, "customerId": claim.customer_id, "serviceId": claim.service_id}
    oids = {field: _object_id(value) for field, value in ids.items()}
    if claim.amount is None or None in oids.values():
        return None
    return {"amount": claim.amount, "currency": claim.currency, **oids}


#: Review resolutions after which the payment is never activated.
NOT_ACTIVATED = ("dismiss", "refund")


class MongoPayments:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.payments

    def by_intent(self, intent_id: str) -> Payment | None:
        doc = self.collection.find_one({"paymentId": intent_id})
        return _payment(doc) if doc else None

    def stuck(self, older_than: timedelta, limit: int = 500) -> list[Payment]:
        query = {
            "status": {"$in": ["pending", "requires_action", "processing"]},
            "paymentId": {"$type": "string"},
            "updatedAt": {"$lte": now() - older_than},
        }
        return [_payment(doc) for doc in self.collection.find(query, limit=limit)]

    def by_charge(self, charge_id: str) -> Payment | None:
        doc = self.collection.find_one({"chargeId": charge_id})
        return _payment(doc) if doc else None

    def note_event(self, payment: Payment, event_id: str, event_at: datetime) -> None:
        older = {"$or": [{"lastEventAt": None}, {"lastEventAt": {"$lt": event_at}}]}
        self.collection.update_one(
            {"_id": payment.record_id, "status": payment.status, **older},
            {"$set": {"lastEventAt": event_at, "stripeEventId": event_id}},
        )

    def note_received(self, payment: Payment, amount: int) -> None:
        if payment.amount_received != amount:
            self.collection.update_one({"_id": payment.record_id}, {"$set": {"amountReceived": amount}})

    def note_charge(self, payment: Payment, charge_id: str) -> None:
        if payment.charge_id != charge_id:
            self.collection.update_one({"_id": payment.record_id}, {"$set": {"chargeId": charge_id}})

    def move(
        self,
        payment: Payment,
        target: str,
        event_id: str | None,
        event_at: datetime | None,
        charge_id: str | None = None,
    ) -> Payment | None:
        # Conditional on every fact the rules decided on (status, last event, refunds counted, the
        # dispute's status), so a move decided on a document another worker changed since is refused.
        moved = self.collection.find_one_and_update(
            {
                "_id": payment.record_id,
                "status": payment.status,
                "lastEventAt": payment.last_event_at,
                "amountRefunded": payment.amount_refunded if payment.amount_refunded else {"$in": [0, None]},
                "dispute.status": payment.dispute.status if payment.dispute else None,
            },
            _move(target, event_id, event_at, charge_id),
            return_document=ReturnDocument.AFTER,
        )
        return _payment(moved) if moved else None

    def move_by_intent(
        self,
        intent_id: str,
        target: str,
        sources: Collection_[str],
        event_id: str,
        event_at: datetime,
        claim: Claim | None = None,
        charge_id: str | None = None,
    ) -> Payment | None:
        # Finding and moving in one write is safe because the filter holds every condition the
        # step-by-step path would check on the document it read: a status the table lets move to
        # ``target``, an event newer than the last applied, and (with a claim) the very amount,
        # currency and ids the intent names, so a payment the intent does not pay for never moves
        # here and is left for the caller to flag first. A miss decides nothing.
        query: dict[str, Any] = {
            "paymentId": intent_id,
            "status": {"$in": sorted(sources)},
            "$or": [{"lastEventAt": None}, {"lastEventAt": {"$lt": event_at}}],
        }
        if claim is not None:
            claimed = _claimed(claim)
            if claimed is None:
                return None
            query.update(claimed)
        moved = self.collection.find_one_and_update(
            query, _move(target, event_id, event_at, charge_id), return_document=ReturnDocument.AFTER
        )
        return _payment(moved) if moved else None

    def flag_review(self, payment: Payment, reason: str, event_id: str | None) -> None:
        at = now()
        flag = {"reviewRequired": {"reason": reason, "eventId": event_id, "at": at}, "updatedAt": at}
        # Not over a person's decision on the same reason: a late event or confirm-payment finding
        # the mismatch a person already resolved does not ask for a second decision.
        unflagged = {"_id": payment.record_id, "reviewRequired": None, "reviewResolved.reason": {"$ne": reason}}
        self.collection.update_one(unflagged, {"$set": {**flag, **FREE_SLOT}})

    def awaiting_activation(self, older_than: timedelta, limit: int = 500) -> list[Payment]:
        """Paid payments (``completed``, or partly refunded) not activated nor held for review, untouched
        for ``older_than``. A review resolved otherwise than ``activate`` (dismissed, or refunded) never activates.
        """
        query = {
            "status": {"$in": sorted(ACTIVATABLE)},
            "activatedAt": None,
            "reviewRequired": None,
            "reviewResolved.action": {"$nin": list(NOT_ACTIVATED)},
            "updatedAt": {"$lte": now() - older_than},
        }
        return [_payment(doc) for doc in self.collection.find(query, limit=limit).sort("updatedAt", ASCENDING)]

    def resolve_review(self, payment: Payment, action: str, by: str) -> bool:
        at = now()
        resolved = {"reason": payment.review, "action": action, "by": by, "at": at}
        done = self.collection.update_one(
            {"_id": payment.record_id, "reviewRequired.reason": payment.review},
            {"$set": {"reviewResolved": resolved, "updatedAt": at}, "$unset": {"reviewRequired": ""}},
        )
        return done.modified_count == 1

    def record_activation(self, payment: Payment, enrollment_id: Any) -> None:
        at = now()
        activation = {"activatedAt": at, "enrollmentId": enrollment_id, "updatedAt": at}
        self.collection.update_one(
            {"_id": payment.record_id, "activatedAt": None}, {"$set": {**activation, **FREE_SLOT}}
        )
