"""Demo data for the walkthrough: a specialist, a customer, an admin, a course, and their JWTs.

Upserted by fixed e-mail addresses, so running ``make run`` again reuses them. Tokens are signed
like the MERN backend signs its own: HS256 with ``JWT_SECRET``, ``id`` and ``role`` claims.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from bson import ObjectId
from pymongo import MongoClient, ReturnDocument

from adapters.mongo import now
from domain.money import to_minor

USERS = {
    "customer": ("demo-customer@example.com", "Asha Customer"),
    "specialist": ("demo-specialist@example.com", "Ravi Specialist"),
    "admin": ("demo-admin@example.com", "Ops Admin"),
}
COURSE = {"name": "Intro to Data Science (demo)", "type": "course", "price": 499, "currency": "INR"}
#: A second service, so the checkout page has one to pick.
CONSULTATION = {"name": "Career consultation, 1 hour (demo)", "type": "consultation", "price": 1500, "currency": "INR"}


def token(user_id: Any, role: str, secret: str, ttl: int = 30 * 86400) -> str:
    """A MERN-style JWT for ``user_id`` with ``role``."""
    issued = int(time.time())
    return jwt.encode({"id": str(user_id), "role": role, "iat": issued, "exp": issued + ttl}, secret, "HS256")


def _upsert(collection: Any, key: dict[str, Any], fields: dict[str, Any]) -> ObjectId:
    doc = collection.find_one_and_update(
        key,
        {"$set": fields, "$setOnInsert": {"createdAt": now()}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        projection={"_id": 1},
    )
    return ObjectId(doc["_id"])


def seed(mongodb_uri: str, db_name: str, jwt_secret: str) -> dict[str, str]:
    """Create (or find) the demo users and services; return what ``stack.json`` reports as ``demo``."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri, tz_aware=True)
    try:
        db = client[db_name]
        ids = {
            role: _upsert(db.users, {"email": email}, {"name": name, "role": role})
            for role, (email, name) in USERS.items()
        }
        course, _ = [
            _upsert(db.services, {"name": s["name"]}, {**s, "specialistId": ids["specialist"], "active": True})
            for s in (COURSE, CONSULTATION)
        ]
    finally:
        client.close()
    return {
        "customer_jwt": token(ids["customer"], "customer", jwt_secret),
        "specialist_jwt": token(ids["specialist"], "specialist", jwt_secret),
        "admin_jwt": token(ids["admin"], "admin", jwt_secret),
        "service_id": str(course),
    }


def catalog(mongodb_uri: str, db_name: str, specialist_email: str = USERS["specialist"][0]) -> list[dict[str, Any]]:
    """The active services of a specialist (the demo one by default), as the checkout page lists them.

    Each as ``{id, name, type, amount, currency}``, the amount in minor units as create-intent charges it.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri, tz_aware=True)
    try:
        db = client[db_name]
        specialist = db.users.find_one({"email": specialist_email}, {"_id": 1})
        found = db.services.find({"specialistId": specialist and specialist["_id"], "active": True}).sort("name", 1)
        return [
            {
                "id": str(doc["_id"]),
                "name": doc["name"],
                "type": doc["type"],
                "amount": to_minor(doc["price"], doc["currency"]),
                "currency": doc["currency"],
            }
            for doc in found
        ]
    finally:
        client.close()
