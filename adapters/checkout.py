"""The MERN app's catalog (``services``, ``users``, read only) and the create-intent side of ``payments``.

The payment holding the customer's open slot for a service has a unique ``openKey``
(``customer:service``), so two concurrent create-intent requests cannot both insert one; the
writes that end the hold (``MongoPayments``) set it to null in the same update; ``creatingUntil`` is a lease on
creating its intent, taken over if the request holding it died.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from adapters.enrollments import ENROLLED
from adapters.mongo import Doc, now
from domain.checkout import Service
from domain.payments import PENDING, Party
from usecases.ports import Draft

#: How long a request may take to create an intent before another may take over.
CREATION_LEASE = timedelta(seconds=30)


def ensure_checkout_indexes(db: Database[Doc]) -> None:
    db.payments.create_index(
        [("openKey", ASCENDING)],
        unique=True,
        name="open_slot_unique",
        partialFilterExpression={"openKey": {"$type": "string"}},
    )


def open_key(customer_id: Any, service_id: Any) -> str:
    return f"{customer_id}:{service_id}"


class MongoCatalog:
    def __init__(self, db: Database[Doc]) -> None:
        self.services: Collection[Doc] = db.services
        self.users: Collection[Doc] = db.users

    def service(self, service_id: Any) -> Service | None:
        doc = self.services.find_one({"_id": service_id})
        if doc is None:
            return None
        return Service(
            id=doc["_id"],
            name=str(doc.get("name", "")),
            type=str(doc.get("type", "")),
            price=doc.get("price"),
            currency=str(doc.get("currency", "")),
            specialist_id=doc.get("specialistId"),
            active=doc.get("active", True) is not False,
        )

    def user(self, user_id: Any) -> Party | None:
        if not isinstance(user_id, ObjectId):
            return None
        doc = self.users.find_one({"_id": user_id}, {"email": 1, "name": 1, "role": 1})
        return Party(doc["_id"], doc.get("email"), doc.get("name")) if doc else None


def _draft(doc: Doc) -> Draft:
    lease = doc.get("creatingUntil")
    return Draft(
        record_id=doc["_id"],
        amount=int(doc["amount"]),
        currency=doc["currency"],
        status=doc["status"],
        intent_id=doc.get("paymentId"),
        creating=bool(lease and lease > now()),
    )


class MongoCheckout:
    def __init__(self, db: Database[Doc]) -> None:
        self.payments: Collection[Doc] = db.payments
        self.enrollments: Collection[Doc] = db.enrollments

    def is_enrolled(self, customer_id: Any, service_id: Any) -> bool:
        query = {"customerId": customer_id, "serviceId": service_id, "status": {"$in": list(ENROLLED)}}
        return self.enrollments.find_one(query, {"_id": 1}) is not None

    def open_payment(self, customer_id: Any, service_id: Any) -> Draft | None:
        doc = self.payments.find_one({"openKey": open_key(customer_id, service_id)})
        return _draft(doc) if doc else None

    def insert_pending(self, customer: Party, specialist: Party, service: Service, amount: int) -> Draft | None:
        at = now()
        record_id = ObjectId()
        doc = {
            "_id": record_id,
            "openKey": open_key(customer.id, service.id),
            "customerId": customer.id,
            "customerEmail": customer.email,
            "customerName": customer.name,
            "specialistId": specialist.id,
            "specialistEmail": specialist.email,
            "specialistName": specialist.name,
            "serviceId": service.id,
            "serviceType": service.type,
            "serviceName": service.name,
            "amount": amount,
            "currency": service.currency.upper(),
            "status": PENDING,
            "amountRefunded": 0,
            "refunds": [],
            "idempotencyKey": f"intent:{record_id}",
            "statusHistory": [{"status": PENDING, "at": at, "eventId": None}],
            "creatingUntil": at + CREATION_LEASE,
            "createdAt": at,
            "updatedAt": at,
        }
        try:
            self.payments.insert_one(doc)
        except DuplicateKeyError:
            return None
        return Draft(record_id, amount, doc["currency"], PENDING, None, creating=False)

    def claim_creation(self, record_id: Any) -> bool:
        at = now()
        claimed = self.payments.find_one_and_update(
            {"_id": record_id, "paymentId": None, "creatingUntil": {"$lte": at}},
            {"$set": {"creatingUntil": at + CREATION_LEASE}},
            projection={"_id": 1},
        )
        return claimed is not None

    def attach_intent(self, record_id: Any, intent_id: str) -> None:
        self.payments.update_one(
            {"_id": record_id}, {"$set": {"paymentId": intent_id, "updatedAt": now()}, "$unset": {"creatingUntil": ""}}
        )

    def release_creation(self, record_id: Any) -> None:
        self.payments.update_one({"_id": record_id, "paymentId": None}, {"$set": {"creatingUntil": now()}})

    def set_amount(self, record_id: Any, amount: int) -> None:
        self.payments.update_one({"_id": record_id}, {"$set": {"amount": amount, "updatedAt": now()}})
