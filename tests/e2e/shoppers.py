"""A fresh customer, specialist and course per test, so tests never share an enrollment."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from bson import ObjectId

from devstack.demo import token
from devstack.stack import Stack


@dataclass(frozen=True)
class Shopper:
    customer_id: ObjectId
    customer_email: str
    specialist_email: str
    service_id: str
    jwt: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.jwt}"}

    def create_intent(self, http: httpx.Client, **extra: Any) -> httpx.Response:
        body = {"serviceId": self.service_id, "serviceType": "course", **extra}
        return http.post("/api/payments/create-intent", json=body, headers=self.auth)


def new_shopper(stack: Stack, db: Any, price: Any = 499, currency: str = "INR") -> Shopper:
    tag = secrets.token_hex(4)
    specialist = db.users.insert_one(
        {"email": f"spec-{tag}@example.test", "name": f"Spec {tag}", "role": "specialist"}
    ).inserted_id
    customer = db.users.insert_one(
        {"email": f"cust-{tag}@example.test", "name": f"Cust {tag}", "role": "customer"}
    ).inserted_id
    service = db.services.insert_one(
        {
            "name": f"Course {tag}",
            "type": "course",
            "price": price,
            "currency": currency,
            "specialistId": specialist,
            "active": True,
        }
    ).inserted_id
    jwt = token(customer, "customer", stack.app_env()["JWT_SECRET"])
    return Shopper(customer, f"cust-{tag}@example.test", f"spec-{tag}@example.test", str(service), jwt)
