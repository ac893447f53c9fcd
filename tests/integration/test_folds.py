"""The writes folded for issue 11, each tested for what it must still refuse.

What each write must keep: docs/architecture.md#idempotency-and-claims.

- ``Payments.move_by_intent`` finds and moves a payment in one write only when the
  step-by-step path would have moved it at once: any doubt is a miss that changes nothing;
- ``Enrollments.activate`` upserts only where the unique index makes the upsert a claim;
- ``MongoOutbox.notify_all`` writes every notification in one bulk write and enqueues the sends
  not done, signed as ever, in one message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.enrollments import MongoEnrollments
from adapters.indexes import ensure_all_indexes
from adapters.mongo import MongoPayments
from adapters.outbox import MongoOutbox
from adapters.queue import EMAILS_QUEUE, Broker
from adapters.settings import Settings
from domain.activation import Claim, claim_of
from domain.payments import COMPLETED, sources_of
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.integration.counting import Counts, counting, install
from tests.support import queued_messages
from usecases.ports import ACTIVATED, ALREADY, DUPLICATE, Notice

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _counted() -> None:
    install()  # before the test's MongoDB client exists


@pytest.fixture
def payments(db: Any) -> MongoPayments:
    ensure_all_indexes(db)
    return MongoPayments(db)


def stored(db: Any, **fields: Any) -> tuple[dict[str, Any], Claim]:
    """A pending payment and the claim of the intent that pays for it."""
    doc = {**pending_payment("pi_1"), **fields}
    db.payments.insert_one(doc)
    intent = events.payment_intent(
        "payment_intent.succeeded", "pi_1", doc["amount"], doc["currency"], events.intent_metadata(doc)
    )
    return doc, claim_of(intent)


def complete(payments: MongoPayments, claim: Claim | None, at: datetime = AT) -> Any:
    return payments.move_by_intent("pi_1", COMPLETED, sources_of(COMPLETED), "evt_1", at, claim, "ch_1")


def test_the_payment_an_intent_pays_for_is_found_and_completed_in_one_write(db: Any, payments: MongoPayments) -> None:
    _, claim = stored(db)
    with counting() as counts:
        moved = complete(payments, claim)
    assert Counts.by_this_thread(counts.mongo) == ["findAndModify payments"]
    assert moved is not None and (moved.status, moved.last_event_at, moved.charge_id) == (COMPLETED, AT, "ch_1")
    doc = db.payments.find_one({"paymentId": "pi_1"})
    assert (doc["stripeEventId"], doc["statusHistory"][-1]["status"]) == ("evt_1", COMPLETED)
    assert doc["paidAt"] == doc["updatedAt"]


@pytest.mark.parametrize(
    ("fields", "claimed", "at"),
    [
        ({}, {"amount": 100}, AT),  # not the money the payment is for
        ({}, {"currency": "USD"}, AT),
        ({"status": "completed"}, {}, AT),  # nothing to move: the step-by-step path decides
        ({"status": "canceled"}, {}, AT),  # a state the table refuses
        ({"lastEventAt": AT}, {}, AT),  # a tie in seconds: Stripe must settle it
        ({"lastEventAt": AT + timedelta(seconds=1)}, {}, AT),  # an older event
        ({}, {"record_id": "upper"}, AT),  # the id spelled otherwise: str() would not give it back
        ({"customerId": "c-1"}, {"customer_id": "c-1"}, AT),  # ids stored as strings: left to the full check
        ({}, {"service_id": None}, AT),  # metadata without the service
    ],
)
def test_any_doubt_is_a_miss_that_changes_nothing(
    db: Any, payments: MongoPayments, fields: dict[str, Any], claimed: dict[str, Any], at: datetime
) -> None:
    doc, claim = stored(db, **fields)
    if claimed.get("record_id") == "upper":
        claimed = {"record_id": str(doc["_id"]).upper()}
    before = db.payments.find_one({"_id": doc["_id"]})
    assert complete(payments, Claim(**{**vars(claim), **claimed}), at) is None
    assert db.payments.find_one({"_id": doc["_id"]}) == before


def test_without_a_claim_only_the_status_and_the_age_decide(db: Any, payments: MongoPayments) -> None:
    stored(db, amount=1)
    moved = payments.move_by_intent("pi_1", "processing", sources_of("processing"), "evt_1", AT)
    assert moved is not None and moved.status == "processing" and moved.charge_id is None


def test_a_new_enrollment_is_claimed_by_one_upsert(db: Any, payments: MongoPayments) -> None:
    doc, _ = stored(db, status="completed")
    payment = payments.by_intent("pi_1")
    assert payment is not None
    enrollments = MongoEnrollments(db)
    enrollments.activate(payment, verified=False)  # learns, once, that the unique index holds
    db.enrollments.delete_many({})
    with counting() as counts:
        outcome, enrollment_id = enrollments.activate(payment, verified=True)
    assert Counts.by_this_thread(counts.mongo) == ["findAndModify enrollments"]
    enrollment = db.enrollments.find_one({"_id": enrollment_id})
    assert outcome == ACTIVATED and enrollment["customerId"] == doc["customerId"]
    assert (enrollment["status"], enrollment["paymentId"], enrollment["createdAt"]) == (
        "active",
        doc["_id"],
        enrollment["updatedAt"],
    )


def test_without_the_unique_index_activation_reads_before_it_inserts(db: Any, payments: MongoPayments) -> None:
    """MERN data that broke the index: no upsert, which could add an enrollment beside an active one."""
    db.enrollments.drop_index("customer_service_unique")
    enrollments = MongoEnrollments(db)
    stored(db, status="completed")
    payment = payments.by_intent("pi_1")
    assert payment is not None
    outcome, enrollment_id = enrollments.activate(payment, verified=False)
    assert outcome == ACTIVATED
    assert enrollments.activate(payment, verified=True) == (ALREADY, enrollment_id)
    second = {**pending_payment("pi_2"), "customerId": payment.customer.id, "serviceId": payment.service_id}
    db.payments.insert_one({**second, "status": "completed", "openKey": "other"})
    other = payments.by_intent("pi_2")
    assert other is not None and enrollments.activate(other, verified=True) == (DUPLICATE, enrollment_id)
    assert db.enrollments.count_documents({}) == 1


def notices(*keys: str) -> list[Notice]:
    return [Notice(key, "enrollment_confirmation", f"{key}@example.com", {"n": key}) for key in keys]


def test_two_notifications_take_one_mongodb_command_and_one_redis_round_trip(
    db: Any, broker: Broker, settings: Settings
) -> None:
    ensure_all_indexes(db)
    outbox = MongoOutbox(db, broker)
    outbox.notify_all(notices("warm-up", "warm-up-2"))  # connections, scripts
    broker.flush_all()
    with counting() as counts:
        outbox.notify_all(notices("a", "b", "a"))
    assert Counts.by_this_thread(counts.mongo) == ["update notifications"]
    assert len(Counts.by_this_thread(counts.redis_round_trips)) == 1
    assert db.notifications.find_one({"dedupeKey": "a"})["recipient"] == "a@example.com"  # the first asked
    [queued] = queued_messages(broker.client, EMAILS_QUEUE)
    assert list(queued.args) == ["a", "b"]
    assert broker.signer.verifies(queued)


def test_a_retry_enqueues_only_the_notifications_not_done(db: Any, broker: Broker) -> None:
    ensure_all_indexes(db)
    outbox = MongoOutbox(db, broker)
    outbox.notify_all(notices("sent", "failed", "pending", "sending"))
    for key in ("sent", "failed", "sending"):
        db.notifications.update_one({"dedupeKey": key}, {"$set": {"status": key, "template": "kept"}})
    broker.flush_all()
    outbox.notify_all(notices("sent", "failed", "pending", "sending", "new"))
    [queued] = queued_messages(broker.client, EMAILS_QUEUE)
    assert sorted(queued.args) == ["new", "pending", "sending"]
    assert db.notifications.count_documents({}) == 5
    assert db.notifications.find_one({"dedupeKey": "sent"})["template"] == "kept"
