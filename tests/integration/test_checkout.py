"""create-intent's one-open-payment rule against real MongoDB: leases, crashes and Stripe failures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
import stripe
from bson import ObjectId

from adapters.checkout import MongoCatalog, MongoCheckout, ensure_checkout_indexes
from adapters.mongo import now
from domain.checkout import create_intent
from domain.ports import CheckoutDeps
from tests.fakes import fake_deps


class FakeIntents:
    """Stripe's PaymentIntents, counting creations; ``fail`` makes the next create raise."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.fail = False

    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        if self.fail:
            self.fail = False
            raise stripe.APIConnectionError("network down")
        intent = {"id": f"pi_{len(self.created)}", "client_secret": f"pi_{len(self.created)}_secret", "amount": amount}
        self.created.append({**intent, "metadata": dict(metadata), "key": idempotency_key})
        return intent

    def update_payment_intent_amount(self, intent_id: str, amount: int) -> Mapping[str, Any]:
        return {"id": intent_id, "client_secret": f"{intent_id}_secret", "amount": amount}

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        return {"id": intent_id, "client_secret": f"{intent_id}_secret"}


@pytest.fixture
def shop(db: Any) -> tuple[CheckoutDeps, FakeIntents, ObjectId, ObjectId]:
    ensure_checkout_indexes(db)
    specialist = db.users.insert_one({"email": "s@example.test", "role": "specialist"}).inserted_id
    customer = db.users.insert_one({"email": "c@example.test", "name": "C", "role": "customer"}).inserted_id
    service = db.services.insert_one(
        {
            "name": "Course",
            "type": "course",
            "price": 499,
            "currency": "INR",
            "specialistId": specialist,
            "active": True,
        }
    ).inserted_id
    intents = FakeIntents()
    deps = CheckoutDeps(catalog=MongoCatalog(db), checkout=MongoCheckout(db), intents=intents, core=fake_deps())
    return deps, intents, customer, service


def test_the_payment_is_stored_before_stripe_and_keyed_by_it(shop: Any, db: Any) -> None:
    """The payment document exists first; the intent's idempotency key and metadata name it."""
    deps, intents, customer, service = shop
    answer = create_intent(customer, service, "course", 49900, deps)
    payment = db.payments.find_one({"paymentId": answer.payment_id})
    assert (payment["amount"], payment["currency"], payment["customerEmail"]) == (49900, "INR", "c@example.test")
    assert intents.created[0]["key"] == f"intent:{payment['_id']}"
    assert intents.created[0]["metadata"]["paymentRecordId"] == str(payment["_id"])
    assert "creatingUntil" not in payment


def test_a_crashed_creator_is_taken_over_after_its_lease(shop: Any, db: Any) -> None:
    """A payment left without an intent by a dead request is completed by the next one, not duplicated."""
    deps, intents, customer, service = shop
    catalog = deps.catalog
    specialist = catalog.user(db.services.find_one()["specialistId"])
    draft = deps.checkout.insert_pending(catalog.user(customer), specialist, catalog.service(service), 49900)
    assert draft is not None
    db.payments.update_one({"_id": draft.record_id}, {"$set": {"creatingUntil": now() - timedelta(seconds=1)}})
    answer = create_intent(customer, service, "course", None, deps)
    assert db.payments.count_documents({}) == 1
    assert db.payments.find_one({"_id": draft.record_id})["paymentId"] == answer.payment_id
    assert len(intents.created) == 1


def test_a_stripe_failure_releases_the_lease_for_an_immediate_retry(shop: Any, db: Any) -> None:
    """When Stripe cannot be reached, the next request creates the intent at once for the same payment."""
    deps, intents, customer, service = shop
    intents.fail = True
    with pytest.raises(stripe.APIConnectionError):
        create_intent(customer, service, "course", None, deps)
    answer = create_intent(customer, service, "course", None, deps)
    assert db.payments.count_documents({}) == 1 and answer.payment_id == "pi_0"
