"""``enrollments``: shared with the MERN app, one document per (customer, service).

Activation is a conditional update, so of two concurrent activations exactly one wins and a
second payment for an active enrollment is reported, never applied.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from adapters.mongo import Doc, now
from domain.payments import Payment
from usecases.ports import ACTIVATED, ALREADY, DUPLICATE

log = logging.getLogger(__name__)

#: Enrollment statuses in which the customer already has the service.
ENROLLED = ("active", "suspended")


def ensure_enrollment_indexes(db: Database[Doc]) -> None:
    """One enrollment per customer and service; tolerated if the MERN data already breaks it."""
    try:
        db.enrollments.create_index(
            [("customerId", ASCENDING), ("serviceId", ASCENDING)], unique=True, name="customer_service_unique"
        )
    except OperationFailure as error:  # existing duplicates: activation still works, with a small race
        log.error("enrollments unique index not created", extra={"error": str(error)})


class MongoEnrollments:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.enrollments
        self._unique: bool | None = None

    def _one_per_customer_and_service(self) -> bool:
        """Whether a unique index (whole-collection) keeps one enrollment per customer and service.

        Asked once per process (``ensure_enrollment_indexes`` ran at start-up); MERN data that
        broke it leaves activation on the slower path that reads before it inserts.
        """
        if self._unique is None:
            self._unique = any(
                info.get("unique") is True
                and {field for field, _ in info["key"]} == {"customerId", "serviceId"}
                and "partialFilterExpression" not in info
                for info in self.collection.index_information().values()
            )
        return self._unique

    def current(self, customer_id: Any, service_id: Any) -> Doc | None:
        return self.collection.find_one({"customerId": customer_id, "serviceId": service_id})

    def activate(self, payment: Payment, verified: bool) -> tuple[str, Any]:
        key = {"customerId": payment.customer.id, "serviceId": payment.service_id}
        at = now()
        fields = {
            "status": "active",
            "paymentStatus": "completed",
            "paymentId": payment.record_id,
            "paymentDate": at,
            "webhookVerified": verified,
            "serviceType": payment.service_type,
            "specialistId": payment.specialist.id,
            "updatedAt": at,
        }
        unique = self._one_per_customer_and_service()
        for _ in range(3):
            # The claim: only an enrollment the customer does not have, and that this payment never
            # activated before (the MERN app may have cancelled it since), becomes active. Where the
            # unique index holds, the claim also creates a missing enrollment (an upsert): with no
            # document for the pair the insert is the claim; with one the filter refuses, the
            # insert hits the index (DuplicateKeyError) and nothing is written. Without the index an
            # upsert could add a second enrollment beside an active one, so it reads first instead.
            try:
                doc = self.collection.find_one_and_update(
                    {**key, "status": {"$nin": list(ENROLLED)}, "paymentId": {"$ne": payment.record_id}},
                    {"$set": fields, "$setOnInsert": {"createdAt": at}},
                    projection={"_id": 1},
                    upsert=unique,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                doc = None  # the pair has an enrollment the claim may not take: see which below
            if doc is not None:
                return ACTIVATED, doc["_id"]
            existing = self.collection.find_one(key, {"status": 1, "paymentId": 1})
            if existing is not None and existing.get("paymentId") == payment.record_id:
                if verified:
                    self._verify(existing["_id"], payment.record_id)
                return ALREADY, existing["_id"]
            if existing is not None and existing.get("status") in ENROLLED:
                return DUPLICATE, existing["_id"]
            if existing is not None or unique:
                continue  # changed between the two reads; decide again
            try:
                inserted = self.collection.insert_one({**key, **fields, "createdAt": at})
                return ACTIVATED, inserted.inserted_id
            except DuplicateKeyError:
                continue  # a concurrent activation inserted it first; decide again against it
        raise RuntimeError(f"could not activate enrollment for payment {payment.intent_id}")

    def suspend(self, payment: Payment, dispute_id: str) -> None:
        self.collection.update_one(
            {"_id": payment.enrollment_id, "paymentId": payment.record_id, "status": "active"},
            {
                "$set": {
                    "status": "suspended",
                    "suspendedBy": dispute_id,
                    "paymentStatus": "disputed",
                    "updatedAt": now(),
                }
            },
        )

    def reinstate(self, payment: Payment, dispute_id: str, payment_status: str) -> None:
        self.collection.update_one(
            {
                "_id": payment.enrollment_id,
                "paymentId": payment.record_id,
                "status": "suspended",
                "suspendedBy": dispute_id,
            },
            {
                "$set": {"status": "active", "paymentStatus": payment_status, "updatedAt": now()},
                "$unset": {"suspendedBy": ""},
            },
        )

    def cancel(self, payment: Payment, payment_status: str) -> None:
        self.collection.update_one(
            {"_id": payment.enrollment_id, "paymentId": payment.record_id, "status": {"$in": list(ENROLLED)}},
            {"$set": {"status": "cancelled", "paymentStatus": payment_status, "updatedAt": now()}},
        )

    def mark_verified(self, payment: Payment) -> None:
        self._verify(payment.enrollment_id, payment.record_id)

    def _verify(self, enrollment_id: Any, record_id: Any) -> None:
        """``webhookVerified`` on the enrollment while ``record_id`` is its payment; its status is left alone."""
        self.collection.update_one(
            {"_id": enrollment_id, "paymentId": record_id, "webhookVerified": {"$ne": True}},
            {"$set": {"webhookVerified": True}},
        )
