"""create-intent's one-open-payment rule against real MongoDB: leases, crashes and Stripe failures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
import stripe
from bson import ObjectId

from adapters.checkout import MongoCatalog, MongoCheckout
from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from domain.errors import RequestRefused
from payments_ops import events
from tests.fakes import BrokenEnrollments, mongo_deps
from usecases.checkout import create_intent
from usecases.inbox import process_event
from usecases.ports import CheckoutDeps


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
    ensure_all_indexes(db)
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
    deps = CheckoutDeps(catalog=MongoCatalog(db), checkout=MongoCheckout(db), intents=intents, core=mongo_deps(db))
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


def succeeded_event(db: Any, intent_id: str, **changes: Any) -> dict[str, Any]:
    """payment_intent.succeeded for a payment create-intent stored, as Stripe would send it."""
    payment = db.payments.find_one({"paymentId": intent_id})
    intent = events.payment_intent(
        "payment_intent.succeeded", intent_id, payment["amount"], payment["currency"], events.intent_metadata(payment)
    )
    intent.update(changes)
    return events.event("payment_intent.succeeded", intent)


def test_a_paid_payment_waiting_for_its_activation_keeps_the_slot(shop: Any, db: Any) -> None:
    """Activation failing after the payment completed: a second create-intent gets the same payment, no new intent."""
    deps, intents, customer, service = shop
    first = create_intent(customer, service, "course", None, deps)
    event = succeeded_event(db, first.payment_id)
    with pytest.raises(RuntimeError, match="enrollments refused"):
        process_event(event, mongo_deps(db, enrollments=BrokenEnrollments()))
    assert db.payments.find_one({"paymentId": first.payment_id})["status"] == "completed"
    again = create_intent(customer, service, "course", None, deps)
    assert (again.payment_id, again.status, len(intents.created)) == (first.payment_id, "completed", 1)
    process_event(event, mongo_deps(db))  # the retry, once enrollments take writes again
    with pytest.raises(RequestRefused, match="already enrolled"):
        create_intent(customer, service, "course", None, deps)
    assert db.payments.count_documents({}) == 1


def test_after_a_mismatched_payment_the_next_create_intent_makes_a_fresh_intent(shop: Any, db: Any) -> None:
    """An intent that succeeded for other money is held for review and frees the slot for a new, pending intent."""
    deps, intents, customer, service = shop
    first = create_intent(customer, service, "course", None, deps)
    process_event(succeeded_event(db, first.payment_id, amount_received=100), mongo_deps(db))
    fresh = create_intent(customer, service, "course", None, deps)
    assert fresh.payment_id != first.payment_id and (fresh.status, fresh.amount) == ("pending", 49900)
    assert [i["id"] for i in intents.created] == [first.payment_id, fresh.payment_id]
    flagged = db.payments.find_one({"paymentId": first.payment_id})
    assert (flagged["status"], flagged["reviewRequired"]["reason"]) == ("completed", "amount_mismatch")


class PaidIntents(FakeIntents):
    """Stripe's intents after the customer paid: each one asked for is as ``paid`` holds it."""

    def __init__(self, paid: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        self.paid = dict(paid)

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        return self.paid[intent_id]


def test_confirm_payment_records_when_it_asked_and_nothing_late_undoes_a_dispute(shop: Any, db: Any) -> None:
    """Completed by confirm-payment, then disputed: Stripe's own late succeeded, or confirming again, keeps it
    disputed with the enrollment suspended, and a refund is refused."""
    from usecases.checkout import confirm_payment
    from usecases.refunds import Requester, request_refund

    deps, _, customer, service = shop
    pid = create_intent(customer, service, "course", None, deps).payment_id
    succeeded = succeeded_event(db, pid)  # Stripe's own event, delivered late
    intent = succeeded["data"]["object"]
    confirming = CheckoutDeps(
        catalog=deps.catalog,
        checkout=deps.checkout,
        intents=PaidIntents({pid: intent}),
        core=mongo_deps(db, {pid: intent}),
    )
    asked = now()
    assert confirm_payment(customer, pid, confirming, now=asked)[0] == "completed"
    paid = db.payments.find_one({"paymentId": pid})
    assert (paid["lastEventAt"], paid["activatedAt"] is not None) == (asked, True)
    dispute = {**events.fixture("dispute"), "id": "dp_1", "status": "needs_response", "payment_intent": pid}
    process_event(events.event("charge.dispute.created", dispute), confirming.core)
    process_event(succeeded, confirming.core)
    assert confirm_payment(customer, pid, confirming, now=now())[0] == "disputed"
    enrollment = db.enrollments.find_one({"_id": paid["enrollmentId"]})
    assert (db.payments.find_one({"paymentId": pid})["status"], enrollment["status"]) == ("disputed", "suspended")
    with pytest.raises(RequestRefused, match="under dispute"):
        request_refund(pid, Requester("admin", "admin"), None, None, confirming.core, now=now(), window=timedelta(30))
