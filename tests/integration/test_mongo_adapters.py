"""The MongoDB adapters' conditional writes, tested directly: each claim wins once, races included."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import pytest
from bson import ObjectId

from adapters.enrollments import MongoEnrollments
from adapters.inbox import MongoInbox
from adapters.indexes import ensure_all_indexes
from adapters.mongo import MongoPayments
from domain.events import StripeEvent
from domain.payments import Payment
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import mongo_deps
from usecases.activation import activate
from usecases.ports import ACTIVATED, ALREADY, DUPLICATE

T = TypeVar("T")
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def payments(db: Any) -> MongoPayments:
    ensure_all_indexes(db)
    return MongoPayments(db)


def stored_payment(db: Any, payments: MongoPayments, intent_id: str = "pi_1", **fields: Any) -> Payment:
    doc = {**pending_payment(intent_id), **fields}
    db.payments.insert_one(doc)
    found = payments.by_intent(intent_id)
    assert found is not None
    return found


def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run ``calls`` in threads released together; their results in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_a_move_applies_only_to_the_state_it_was_decided_on(db: Any, payments: MongoPayments) -> None:
    """A second writer holding the same old state loses; the winner's history entry is the only one."""
    payment = stored_payment(db, payments)
    assert payments.move(payment, "processing", "evt_1", AT)
    assert not payments.move(payment, "failed", "evt_2", AT)
    doc = db.payments.find_one({"paymentId": "pi_1"})
    assert (doc["status"], doc["stripeEventId"], doc["lastEventAt"]) == ("processing", "evt_1", AT)
    assert [h["status"] for h in doc["statusHistory"]] == ["pending", "processing"]


def test_completing_keeps_the_open_slot_and_ending_gives_it_up(db: Any, payments: MongoPayments) -> None:
    """completed still holds the customer's slot; canceled frees it in the same write."""
    completed = stored_payment(db, payments, "pi_1")
    assert payments.move(completed, "completed", "evt_1", AT)
    assert db.payments.find_one({"paymentId": "pi_1"})["openKey"] is not None
    canceled = stored_payment(db, payments, "pi_2")
    assert payments.move(canceled, "canceled", "evt_2", AT)
    assert db.payments.find_one({"paymentId": "pi_2"})["openKey"] is None


def test_an_activation_is_recorded_once_and_frees_the_slot(db: Any, payments: MongoPayments) -> None:
    """The first record_activation wins; a later one (another enrollment id) changes nothing."""
    payment = stored_payment(db, payments, status="completed")
    first, second = ObjectId(), ObjectId()
    payments.record_activation(payment, first)
    recorded = db.payments.find_one({"paymentId": "pi_1"})
    payments.record_activation(payment, second)
    again = db.payments.find_one({"paymentId": "pi_1"})
    assert (again["enrollmentId"], again["activatedAt"], again["openKey"]) == (first, recorded["activatedAt"], None)
    reloaded = payments.by_intent("pi_1")
    assert reloaded is not None and reloaded.activated_at == recorded["activatedAt"]


def test_the_first_review_reason_stays_and_the_slot_is_freed(db: Any, payments: MongoPayments) -> None:
    """flag_review twice keeps the first reason; the flagged payment leaves the open slot."""
    payment = stored_payment(db, payments)
    payments.flag_review(payment, "amount_mismatch", "evt_1")
    payments.flag_review(payment, "duplicate_payment", "evt_2")
    doc = db.payments.find_one({"paymentId": "pi_1"})
    assert (doc["reviewRequired"]["reason"], doc["reviewRequired"]["eventId"], doc["openKey"]) == (
        "amount_mismatch",
        "evt_1",
        None,
    )
    reloaded = payments.by_intent("pi_1")
    assert reloaded is not None and reloaded.review == "amount_mismatch"


def test_an_enrollment_is_activated_once_per_payment(db: Any, payments: MongoPayments) -> None:
    """First call activates, a second is ALREADY, another payment for the active enrollment is DUPLICATE."""
    enrollments = MongoEnrollments(db)
    payment = stored_payment(db, payments, status="completed")
    outcome, enrollment_id = enrollments.activate(payment, verified=False)
    assert outcome == ACTIVATED
    assert enrollments.activate(payment, verified=True) == (ALREADY, enrollment_id)
    assert db.enrollments.find_one()["webhookVerified"] is True
    other = stored_payment(
        db, payments, "pi_2", customerId=payment.customer.id, serviceId=payment.service_id, openKey="other"
    )
    assert enrollments.activate(other, verified=True) == (DUPLICATE, enrollment_id)
    assert db.enrollments.count_documents({}) == 1


def test_an_enrollment_this_payment_activated_is_never_activated_again(db: Any, payments: MongoPayments) -> None:
    """Cancelled by the MERN app after this payment activated it: it stays cancelled; a new payment may buy it."""
    enrollments = MongoEnrollments(db)
    payment = stored_payment(db, payments, status="completed")
    _, enrollment_id = enrollments.activate(payment, verified=False)
    db.enrollments.update_one({"_id": enrollment_id}, {"$set": {"status": "cancelled"}})
    assert enrollments.activate(payment, verified=True) == (ALREADY, enrollment_id)
    doc = db.enrollments.find_one({"_id": enrollment_id})
    assert (doc["status"], doc["webhookVerified"]) == ("cancelled", True)
    repurchase = stored_payment(
        db, payments, "pi_2", customerId=payment.customer.id, serviceId=payment.service_id, openKey="other"
    )
    assert enrollments.activate(repurchase, verified=True) == (ACTIVATED, enrollment_id)
    assert db.enrollments.find_one({"_id": enrollment_id})["status"] == "active"


def test_mark_verified_touches_only_the_flag_of_this_payments_enrollment(db: Any, payments: MongoPayments) -> None:
    """webhookVerified is set on the enrollment the payment activated; its status stays what it is."""
    enrollments = MongoEnrollments(db)
    payment = stored_payment(db, payments, status="completed")
    _, enrollment_id = enrollments.activate(payment, verified=False)
    payments.record_activation(payment, enrollment_id)
    db.enrollments.update_one({"_id": enrollment_id}, {"$set": {"status": "cancelled"}})
    activated = payments.by_intent("pi_1")
    assert activated is not None
    enrollments.mark_verified(activated)
    doc = db.enrollments.find_one({"_id": enrollment_id})
    assert (doc["status"], doc["webhookVerified"]) == ("cancelled", True)


def test_two_threads_activating_one_payment_enroll_once(db: Any, payments: MongoPayments) -> None:
    """The webhook and confirm-payment at the same moment: one enrollment, one activation record."""
    for round_number in range(10):
        db.enrollments.delete_many({})
        payment = stored_payment(db, payments, f"pi_race_{round_number}", status="completed")
        deps = mongo_deps(db)
        ids = race([partial(activate, payment, deps, verified=True, event_id="evt_1")] * 2)
        assert ids[0] == ids[1] is not None
        assert db.enrollments.count_documents({}) == 1
        doc = db.payments.find_one({"_id": payment.record_id})
        assert doc["enrollmentId"] == ids[0]


def test_two_payments_racing_for_one_enrollment_end_with_one_activation(db: Any, payments: MongoPayments) -> None:
    """Two different payments for the same customer and service: one ACTIVATED, the other DUPLICATE."""
    enrollments = MongoEnrollments(db)
    for round_number in range(10):
        db.enrollments.delete_many({})
        first = stored_payment(db, payments, f"pi_a{round_number}", status="completed")
        second = stored_payment(
            db,
            payments,
            f"pi_b{round_number}",
            status="completed",
            customerId=first.customer.id,
            serviceId=first.service_id,
            openKey=f"b{round_number}",
        )
        outcomes = race([partial(enrollments.activate, first, True), partial(enrollments.activate, second, True)])
        assert sorted(o for o, _ in outcomes) == [ACTIVATED, DUPLICATE]
        assert db.enrollments.count_documents({}) == 1


def test_the_inbox_records_an_event_once_and_counts_deliveries(db: Any, payments: MongoPayments) -> None:
    """receive stores the first delivery and counts the rest; finish and fail set the status."""
    inbox = MongoInbox(db)
    raw = events.event(
        "payment_intent.succeeded", events.payment_intent("payment_intent.succeeded", "pi_1", 1, "inr", {})
    )
    event = StripeEvent.parse(raw)
    results = race([lambda: inbox.receive(event)] * 4)
    assert results == ["received"] * 4
    assert db.stripe_events.find_one({"_id": event.id})["attempts"] == 4
    inbox.fail(event.id, "bad data")
    assert db.stripe_events.find_one({"_id": event.id})["error"] == "bad data"
    inbox.finish(event.id, "processed")
    doc = db.stripe_events.find_one({"_id": event.id})
    assert (doc["status"], "error" in doc) == ("processed", False)
    assert inbox.receive(event) == "processed"
