"""Stripe events through the inbox and the handlers, against MongoDB: any order, any duplicate.

The use cases run on the real MongoDB adapters; only Stripe and the outbox are stand-ins. What keeps
every effect once: docs/architecture.md#idempotency-and-claims.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from adapters.indexes import ensure_all_indexes
from domain.errors import RetryLater
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import FakeStripe, RecordingJobs, RecordingOutbox, mongo_deps
from usecases.inbox import process_event
from usecases.ports import Deps
from usecases.refunds import execute_refund

T0 = 1_700_000_000


@pytest.fixture
def payment(db: Any) -> dict[str, Any]:
    """A pending payment as create-intent stores it, holding the customer's open slot."""
    ensure_all_indexes(db)
    doc = pending_payment("pi_1")
    db.payments.insert_one(doc)
    return doc


def intent_event(doc: dict[str, Any], event_type: str, created: int = T0, **changes: Any) -> dict[str, Any]:
    intent = events.payment_intent(
        event_type, doc["paymentId"], doc["amount"], doc["currency"], events.intent_metadata(doc)
    )
    intent.update(changes)
    return events.event(event_type, intent, created=created)


def stored(db: Any, doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = db.payments.find_one({"_id": doc["_id"]})
    return found


def outbox(deps: Deps) -> RecordingOutbox:
    return cast(RecordingOutbox, deps.outbox)


def set_status(db: Any, doc: dict[str, Any], status: str, last: int | None = None, **fields: Any) -> None:
    at = datetime.fromtimestamp(last, UTC) if last is not None else None
    db.payments.update_one({"_id": doc["_id"]}, {"$set": {"status": status, "lastEventAt": at, **fields}})


def test_succeeded_completes_activates_once_and_emails_both_sides(db: Any, payment: dict[str, Any]) -> None:
    """The payment completes, the enrollment is active and verified, the activation is recorded, the slot freed."""
    deps = mongo_deps(db)
    event = intent_event(payment, "payment_intent.succeeded")
    assert process_event(event, deps) == "processed"
    after = stored(db, payment)
    enrollment = db.enrollments.find_one({"customerId": payment["customerId"]})
    assert (after["status"], after["enrollmentId"], after["openKey"]) == ("completed", enrollment["_id"], None)
    assert after["activatedAt"] is not None
    assert (enrollment["status"], enrollment["paymentId"], enrollment["webhookVerified"]) == (
        "active",
        payment["_id"],
        True,
    )
    assert db.stripe_events.find_one({"_id": event["id"]})["status"] == "processed"
    assert outbox(deps).recipients("enrollment_confirmation") == {payment["customerEmail"]}
    assert outbox(deps).recipients("specialist_new_enrollment") == {payment["specialistEmail"]}
    assert [len(batch) for batch in outbox(deps).batches] == [2]  # both in one outbox write


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("payment_intent.processing", "processing"),
        ("payment_intent.requires_action", "requires_action"),
        ("payment_intent.payment_failed", "failed"),
        ("payment_intent.canceled", "canceled"),
    ],
)
def test_each_outcome_event_moves_a_pending_payment(
    db: Any, payment: dict[str, Any], event_type: str, status: str
) -> None:
    """Every subscribed intent outcome has a handler that moves a pending payment to its status."""
    process_event(intent_event(payment, event_type), mongo_deps(db))
    assert stored(db, payment)["status"] == status


def test_only_canceled_gives_up_the_open_slot(db: Any, payment: dict[str, Any]) -> None:
    """processing and requires_action keep the slot; canceled ends the payment and frees it."""
    deps = mongo_deps(db)
    process_event(intent_event(payment, "payment_intent.requires_action", T0), deps)
    process_event(intent_event(payment, "payment_intent.processing", T0 + 1), deps)
    assert stored(db, payment)["openKey"] == payment["openKey"]
    set_status(db, payment, "requires_action", last=T0 + 1)
    process_event(intent_event(payment, "payment_intent.canceled", T0 + 2), deps)
    assert stored(db, payment)["openKey"] is None


def test_a_redelivered_event_is_skipped(db: Any, payment: dict[str, Any]) -> None:
    """A processed event delivered again changes nothing and counts the delivery."""
    deps = mongo_deps(db)
    event = intent_event(payment, "payment_intent.succeeded")
    process_event(event, deps)
    assert process_event(event, deps) == "processed"
    assert [h["status"] for h in stored(db, payment)["statusHistory"]] == ["pending", "completed"]
    assert db.stripe_events.find_one({"_id": event["id"]})["attempts"] == 2


def test_duplicates_and_reordering_end_the_same(db: Any, payment: dict[str, Any]) -> None:
    """succeeded twice, then an older processing: completed, one enrollment, the same two notifications."""
    deps = mongo_deps(db, intents={"pi_1": {"id": "pi_1", "status": "succeeded"}})
    succeeded = intent_event(payment, "payment_intent.succeeded", T0 + 2)
    process_event(succeeded, deps)
    process_event(succeeded, deps)
    process_event(intent_event(payment, "payment_intent.processing", T0 + 1), deps)
    assert stored(db, payment)["status"] == "completed"
    assert db.enrollments.count_documents({}) == 1
    assert len({key for key, *_ in outbox(deps).calls}) == 2


def test_a_failed_payment_can_still_succeed(db: Any, payment: dict[str, Any]) -> None:
    """A decline followed by a successful retry ends completed and activated."""
    deps = mongo_deps(db)
    process_event(intent_event(payment, "payment_intent.payment_failed", T0), deps)
    process_event(intent_event(payment, "payment_intent.succeeded", T0 + 30), deps)
    assert stored(db, payment)["status"] == "completed" and stored(db, payment)["activatedAt"] is not None


def test_a_tie_in_seconds_is_settled_by_stripe(db: Any, payment: dict[str, Any]) -> None:
    """Two events in the same second: Stripe's current state of the intent decides."""
    set_status(db, payment, "processing", last=T0)
    stripe_says = {"pi_1": {"id": "pi_1", "status": "requires_payment_method", "last_payment_error": {"x": 1}}}
    deps = mongo_deps(db, intents=stripe_says)
    process_event(intent_event(payment, "payment_intent.payment_failed", T0), deps)
    assert stored(db, payment)["status"] == "failed"
    assert cast(FakeStripe, deps.stripe).calls == ["pi_1"]


def test_a_refused_move_asks_stripe_and_keeps_a_terminal_state(db: Any, payment: dict[str, Any]) -> None:
    """A canceled payment stays canceled even if a late failure event insists."""
    set_status(db, payment, "canceled", last=T0)
    deps = mongo_deps(db, intents={"pi_1": {"id": "pi_1", "status": "canceled"}})
    assert process_event(intent_event(payment, "payment_intent.payment_failed", T0 + 10), deps) == "processed"
    assert stored(db, payment)["status"] == "canceled"


def test_an_intent_we_did_not_create_is_ignored(db: Any, payment: dict[str, Any]) -> None:
    """An event about an intent without our metadata source is recorded ignored, not retried."""
    foreign = events.event(
        "payment_intent.succeeded", events.payment_intent("payment_intent.succeeded", "pi_other", 100, "usd", {})
    )
    assert process_event(foreign, mongo_deps(db)) == "ignored"
    assert db.stripe_events.find_one({"_id": foreign["id"]})["status"] == "ignored"


def test_our_intent_without_a_visible_payment_is_retried(db: Any, payment: dict[str, Any]) -> None:
    """An event about one of ours whose payment is not stored yet raises RetryLater."""
    event = intent_event(payment, "payment_intent.succeeded")
    event["data"]["object"]["id"] = "pi_not_stored_yet"
    with pytest.raises(RetryLater):
        process_event(event, mongo_deps(db))


def test_an_amount_mismatch_is_flagged_completed_never_activated(db: Any, payment: dict[str, Any]) -> None:
    """Stripe took other money: the payment records it, is held for review, leaves the slot; ops are told."""
    deps = mongo_deps(db)
    process_event(intent_event(payment, "payment_intent.succeeded", amount_received=100), deps)
    after = stored(db, payment)
    assert (after["status"], after["reviewRequired"]["reason"], after["openKey"]) == (
        "completed",
        "amount_mismatch",
        None,
    )
    assert "activatedAt" not in after and db.enrollments.count_documents({}) == 0
    assert outbox(deps).recipients("ops_review_required") == {"ops@example.test"}


def test_a_payment_the_one_write_path_cannot_match_completes_step_by_step(db: Any) -> None:
    """Ids the MERN app stored as strings: the one-write path misses, the full check finds the intent pays for it."""
    ensure_all_indexes(db)
    doc = {**pending_payment("pi_1"), "customerId": "c-1", "serviceId": "s-1"}
    db.payments.insert_one(doc)
    assert process_event(intent_event(doc, "payment_intent.succeeded"), mongo_deps(db)) == "processed"
    after = stored(db, doc)
    assert (after["status"], after.get("reviewRequired"), after["chargeId"][:3]) == ("completed", None, "ch_")
    assert db.enrollments.find_one({"customerId": "c-1"})["_id"] == after["enrollmentId"]


def test_metadata_naming_another_payment_is_a_metadata_mismatch(db: Any, payment: dict[str, Any]) -> None:
    """An intent whose metadata names another customer is flagged metadata_mismatch, not activated."""
    event = intent_event(payment, "payment_intent.succeeded")
    event["data"]["object"]["metadata"]["customerId"] = "someone-else"
    process_event(event, mongo_deps(db))
    assert stored(db, payment)["reviewRequired"]["reason"] == "metadata_mismatch"
    assert db.enrollments.count_documents({}) == 0


def test_a_second_payment_for_an_active_enrollment_is_flagged_duplicate(db: Any, payment: dict[str, Any]) -> None:
    """Another successful payment for the same service is never a second activation, and leaves the slot."""
    deps = mongo_deps(db)
    process_event(intent_event(payment, "payment_intent.succeeded"), deps)
    second = {**payment, "_id": pending_payment("pi_2")["_id"], "paymentId": "pi_2"}
    db.payments.insert_one(second)
    process_event(intent_event(second, "payment_intent.succeeded"), deps)
    after = stored(db, second)
    assert (after["reviewRequired"]["reason"], after["openKey"]) == ("duplicate_payment", None)
    assert "activatedAt" not in after
    assert outbox(deps).recipients("enrollment_confirmation") == {payment["customerEmail"]}
    assert db.enrollments.find_one()["paymentId"] == payment["_id"]


def test_a_duplicate_payment_is_refunded_in_full_once(db: Any, payment: dict[str, Any]) -> None:
    """The second payment is refunded through the refunds actor, once; the paid enrollment stays active."""
    deps = mongo_deps(db)
    process_event(intent_event(payment, "payment_intent.succeeded"), deps)
    second = {**payment, "_id": pending_payment("pi_2")["_id"], "paymentId": "pi_2"}
    db.payments.insert_one(second)
    duplicate = intent_event(second, "payment_intent.succeeded")
    process_event(duplicate, deps)
    jobs = cast(RecordingJobs, deps.jobs).refunds
    assert jobs == [("pi_2", f"duplicate-{second['_id']}")]
    db.stripe_events.delete_many({})
    process_event(duplicate, deps)  # a retry after a crash: the same request, not a second one
    for intent_id, request_id in set(jobs):
        execute_refund(intent_id, request_id, deps)
    after = stored(db, second)
    assert (after["status"], after["amountRefunded"], len(after["refunds"])) == ("refunded", 49900, 1)
    assert after["refunds"][0]["reason"] == "duplicate"
    assert len(cast(FakeStripe, deps.stripe).refunds) == 1
    assert db.enrollments.find_one()["status"] == "active"
    assert outbox(deps).recipients("refund_confirmation") == {payment["customerEmail"]}


def test_a_declined_payment_emails_the_customer_once_per_event(db: Any, payment: dict[str, Any]) -> None:
    """payment_failed marks the payment failed and asks for one email to the customer, keyed by the event."""
    deps = mongo_deps(db)
    event = intent_event(payment, "payment_intent.payment_failed")
    process_event(event, deps)
    process_event(event, deps)
    assert stored(db, payment)["status"] == "failed"
    [(key, template, to, context)] = outbox(deps).calls
    assert (template, to, context["reason"]) == ("payment_failed", payment["customerEmail"], "Your card was declined.")
    assert key.endswith(event["id"])


def test_a_late_succeeded_for_a_refunded_payment_activates_nothing(db: Any, payment: dict[str, Any]) -> None:
    """The first delivery of succeeded arriving after the payment was refunded: no enrollment, no email."""
    set_status(db, payment, "refunded", last=T0 + 60, openKey=None)
    deps = mongo_deps(db, intents={"pi_1": {"id": "pi_1", "status": "succeeded"}})
    assert process_event(intent_event(payment, "payment_intent.succeeded", T0), deps) == "processed"
    assert stored(db, payment)["status"] == "refunded"
    assert db.enrollments.count_documents({}) == 0
    assert outbox(deps).calls == []


def test_a_late_succeeded_never_brings_a_cancelled_enrollment_back(db: Any, payment: dict[str, Any]) -> None:
    """After activation the MERN app cancelled the enrollment; a redelivered succeeded leaves it cancelled."""
    deps = mongo_deps(db)
    process_event(intent_event(payment, "payment_intent.succeeded", T0), deps)
    db.enrollments.update_one({}, {"$set": {"status": "cancelled"}})
    process_event(intent_event(payment, "payment_intent.succeeded", T0 + 5), deps)
    assert db.enrollments.find_one()["status"] == "cancelled"


def dispute_doc(status: str) -> dict[str, Any]:
    at = datetime.fromtimestamp(T0, UTC)
    return {"id": "dp_1", "status": status, "eventAt": at, "statusBefore": "completed", "amount": 49900}


#: A payment in each status only refunds and disputes lead to, with the facts that put it there.
AFTER_SALE: dict[str, dict[str, Any]] = {
    "disputed": {"dispute": dispute_doc("needs_response")},
    "dispute_lost": {"dispute": dispute_doc("lost")},
    "refunded": {"amountRefunded": 49900},
    "partially_refunded": {"amountRefunded": 100},
}


@pytest.mark.parametrize("status", sorted(AFTER_SALE))
@pytest.mark.parametrize(
    "event_type", ["payment_intent.succeeded", "payment_intent.processing", "payment_intent.payment_failed"]
)
@pytest.mark.parametrize(("last", "created"), [(None, T0), (T0, T0 - 60), (T0, T0 + 60)])
def test_an_intent_event_never_moves_a_refunded_or_disputed_payment(
    db: Any, payment: dict[str, Any], status: str, event_type: str, last: int | None, created: int
) -> None:
    """Late, early or tied, with or without a last event time (confirm-payment): the status stays. Only a
    payment partly refunded before its activation is activated by its succeeded event: the customer
    still paid for the course, and the enrollment ends as it would had the refund come after."""
    set_status(db, payment, status, last=last, openKey=None, **AFTER_SALE[status])
    deps = mongo_deps(db, intents={"pi_1": {"id": "pi_1", "status": "succeeded"}})
    assert process_event(intent_event(payment, event_type, created), deps) == "processed"
    assert stored(db, payment)["status"] == status
    activates = status == "partially_refunded" and event_type == "payment_intent.succeeded"
    assert db.enrollments.count_documents({"status": "active"}) == int(activates)


def test_a_late_succeeded_after_the_dispute_opened_keeps_it_disputed(db: Any, payment: dict[str, Any]) -> None:
    """Stripe's own succeeded, delivered after a dispute opened on the webhook-completed payment: still disputed."""
    deps = mongo_deps(db, intents={"pi_1": {"id": "pi_1", "status": "succeeded"}})
    succeeded = intent_event(payment, "payment_intent.succeeded", T0)
    process_event(succeeded, deps)
    dispute = {**events.fixture("dispute"), "id": "dp_1", "status": "needs_response", "payment_intent": "pi_1"}
    process_event(events.event("charge.dispute.created", dispute, created=T0 + 60), deps)
    assert (stored(db, payment)["status"], db.enrollments.find_one()["status"]) == ("disputed", "suspended")
    process_event(intent_event(payment, "payment_intent.processing", T0 - 5), deps)  # late, older
    process_event(intent_event(payment, "payment_intent.succeeded", T0 + 120), deps)  # another, newer
    assert (stored(db, payment)["status"], db.enrollments.find_one()["status"]) == ("disputed", "suspended")


def test_a_dispute_recorded_before_the_payment_completed_is_applied_then(db: Any, payment: dict[str, Any]) -> None:
    """A dispute handled while the payment was pending: completed by succeeded, it is disputed, never activated."""
    deps = mongo_deps(db)
    dispute = {**events.fixture("dispute"), "id": "dp_1", "status": "needs_response", "payment_intent": "pi_1"}
    process_event(events.event("charge.dispute.created", dispute, created=T0 + 60), deps)
    assert stored(db, payment)["status"] == "pending"
    process_event(intent_event(payment, "payment_intent.succeeded", T0), deps)
    assert stored(db, payment)["status"] == "disputed"
    assert stored(db, payment).get("activatedAt") is None and db.enrollments.count_documents({}) == 0
