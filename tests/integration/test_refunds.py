"""Refunds against MongoDB: asked once, carried out once, recorded once, in any order (issue 8).

The use cases on the real MongoDB adapters; Stripe is a dumb store of intents and refunds.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from adapters.mongo import now
from adapters.wiring import ensure_all_indexes
from devstack import events
from devstack.send_event import pending_payment
from domain.errors import RequestRefused, RetryLater
from tests.fakes import FakeStripe, RecordingJobs, RecordingOutbox, mongo_deps
from usecases.inbox import process_event
from usecases.ports import Deps
from usecases.refunds import Requester, execute_refund, request_refund

WINDOW = timedelta(days=30)


@pytest.fixture
def paid(db: Any) -> dict[str, Any]:
    """A payment of 49900 INR, completed and activated a day ago, with its active enrollment."""
    ensure_all_indexes(db)
    doc = pending_payment("pi_paid")
    enrollment = db.enrollments.insert_one(
        {"customerId": doc["customerId"], "serviceId": doc["serviceId"], "status": "active", "paymentId": doc["_id"]}
    ).inserted_id
    day_ago = now() - timedelta(days=1)
    doc.update(status="completed", paidAt=day_ago, activatedAt=day_ago, enrollmentId=enrollment, openKey=None)
    db.payments.insert_one(doc)
    return doc


def customer(doc: dict[str, Any]) -> Requester:
    return Requester(doc["customerId"], "customer")


def ask(deps: Deps, who: Requester, amount: int | None, at: datetime | None = None) -> str:
    return request_refund("pi_paid", who, amount, "requested_by_customer", deps, now=at or now(), window=WINDOW)


def carry_out(deps: Deps) -> None:
    """What the refunds actor does for every job asked for so far (one message per job, redelivered as itself)."""
    for intent_id, request_id in cast(RecordingJobs, deps.jobs).refunds:
        execute_refund(intent_id, request_id, deps, holder=f"message-{request_id}")


def stripe_of(deps: Deps) -> FakeStripe:
    return cast(FakeStripe, deps.stripe)


def payment(db: Any) -> dict[str, Any]:
    found: dict[str, Any] = db.payments.find_one({"paymentId": "pi_paid"})
    return found


def test_a_partial_then_a_full_refund(db: Any, paid: dict[str, Any]) -> None:
    """Two Stripe refunds for the right amounts; partially_refunded, then refunded and the enrollment cancelled."""
    deps = mongo_deps(db)
    ask(deps, customer(paid), 20000)
    carry_out(deps)
    after = payment(db)
    assert (after["status"], after["amountRefunded"], after["refundReserved"]) == ("partially_refunded", 20000, 0)
    assert db.enrollments.find_one()["status"] == "active"
    ask(deps, customer(paid), None)  # everything left
    carry_out(deps)
    after = payment(db)
    assert (after["status"], after["amountRefunded"]) == ("refunded", 49900)
    assert [r["amount"] for r in stripe_of(deps).refunds] == [20000, 29900]
    assert stripe_of(deps).refunds[0]["key"] == f"refund:{after['refunds'][0]['refundRequestId']}"
    assert (db.enrollments.find_one()["status"], db.enrollments.find_one()["paymentStatus"]) == (
        "cancelled",
        "refunded",
    )
    outbox = cast(RecordingOutbox, deps.outbox)
    assert len(outbox.keys("refund_confirmation")) == 2 and len(outbox.keys("refund_notice")) == 2
    with pytest.raises(RequestRefused, match="cannot be refunded"):
        ask(deps, customer(paid), 1)


def test_more_than_is_left_is_not_refundable(db: Any, paid: dict[str, Any]) -> None:
    """A request above the remainder (amount less refunded less pending requests) is refused, naming what is left."""
    deps = mongo_deps(db)
    ask(deps, customer(paid), 40000)  # pending: holds 40000 of 49900
    with pytest.raises(RequestRefused) as refused:
        ask(deps, customer(paid), 10000)
    assert (refused.value.code, refused.value.message) == ("not_refundable", "9900 is left to refund")


def test_two_concurrent_full_refunds_make_one_request(db: Any, paid: dict[str, Any]) -> None:
    """Two full refunds asked at the same moment: one recorded and queued, the other refused."""
    for round_number in range(5):
        db.payments.update_one({"_id": paid["_id"]}, {"$set": {"refunds": [], "refundReserved": 0}})
        deps = mongo_deps(db)
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def one(deps: Deps = deps, start: threading.Barrier = start, outcomes: list[str] = outcomes) -> None:
            start.wait()
            try:
                outcomes.append(ask(deps, customer(paid), None))
            except RequestRefused as error:
                outcomes.append(error.code)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(o == "not_refundable" for o in outcomes) == [False, True], round_number
        assert len(cast(RecordingJobs, deps.jobs).refunds) == 1
        assert payment(db)["refundReserved"] == 49900


def test_a_crash_after_stripe_refunded_never_refunds_twice(db: Any, paid: dict[str, Any]) -> None:
    """The actor dies after Stripe made the refund; the redelivery adopts it (no idempotency key needed)."""
    deps = mongo_deps(db)
    ask(deps, customer(paid), 10000)
    stripe_of(deps).crash_after_refund = True
    with pytest.raises(ConnectionResetError):
        carry_out(deps)
    assert payment(db)["refunds"][0]["status"] == "pending"  # Stripe refunded; nothing recorded yet
    carry_out(deps)
    carry_out(deps)  # and once more, as a duplicate message would
    assert len(stripe_of(deps).refunds) == 1
    after = payment(db)
    assert (after["amountRefunded"], after["refunds"][0]["id"], after["refundReserved"]) == (10000, "re_1", 0)


def test_a_second_run_of_a_request_being_carried_out_waits_and_never_calls_stripe(
    db: Any, paid: dict[str, Any]
) -> None:
    """Two messages for one request: the one that claimed it calls Stripe; the other retries and finds it done."""
    deps = mongo_deps(db)
    request_id = ask(deps, customer(paid), 10000)
    pending = deps.payments.by_intent("pi_paid")
    assert pending is not None and deps.refunds.claim(pending, request_id, "message-a")
    with pytest.raises(RetryLater, match="another run"):
        execute_refund("pi_paid", request_id, deps, holder="message-b")
    assert stripe_of(deps).refunds == []
    execute_refund("pi_paid", request_id, deps, holder="message-a")  # message-a redelivered: takes its claim back
    execute_refund("pi_paid", request_id, deps, holder="message-b")  # b's retry: already carried out
    assert len(stripe_of(deps).refunds) == 1
    assert payment(db)["amountRefunded"] == 10000


def test_a_refund_stripe_refuses_is_recorded_released_and_the_requester_told(db: Any, paid: dict[str, Any]) -> None:
    """Stripe says no: the request is failed with Stripe's reason, its amount free again, the requester emailed."""
    deps = mongo_deps(db)
    ask(deps, Requester(paid["specialistId"], "specialist"), 10000)
    stripe_of(deps).refuse = "Charge ch_1 has been charged back."
    carry_out(deps)
    entry = payment(db)["refunds"][0]
    assert (entry["status"], entry["failureReason"], payment(db)["refundReserved"]) == (
        "failed",
        "Charge ch_1 has been charged back.",
        0,
    )
    assert cast(RecordingOutbox, deps.outbox).recipients("refund_refused") == {paid["specialistEmail"]}
    assert payment(db)["status"] == "completed"


def test_who_may_ask(db: Any, paid: dict[str, Any]) -> None:
    """The customer within the window, the specialist and admins at any time; anyone else does not see it."""
    deps = mongo_deps(db)
    late = now() + WINDOW
    with pytest.raises(RequestRefused, match="within 30 days"):
        ask(deps, customer(paid), 100, at=late)
    ask(deps, Requester(paid["specialistId"], "specialist"), 100, at=late)
    ask(deps, Requester("an-admin", "admin"), 100, at=late)
    for stranger in (Requester("someone", "customer"), Requester("someone", "specialist")):
        with pytest.raises(RequestRefused, match="not found"):
            ask(deps, stranger, 100)


def test_a_payment_under_dispute_or_not_paid_is_not_refundable(db: Any, paid: dict[str, Any]) -> None:
    """Disputed, pending or failed payments refuse refunds with 409 not_refundable."""
    deps = mongo_deps(db)
    for status, why in (("disputed", "under dispute"), ("pending", "pending payment"), ("failed", "failed payment")):
        db.payments.update_one({"_id": paid["_id"]}, {"$set": {"status": status}})
        with pytest.raises(RequestRefused, match=why):
            ask(deps, Requester("an-admin", "admin"), None)


def refund_event(event_type: str, refund: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return events.event(event_type, refund, created=created)


def dashboard_refund(amount: int, status: str = "succeeded") -> dict[str, Any]:
    refund = events.fixture("refund")
    refund.update(id=events.new_id("re"), amount=amount, payment_intent="pi_paid", status=status, currency="inr")
    return refund


def test_a_dashboard_refund_is_recorded_once_from_its_events(db: Any, paid: dict[str, Any]) -> None:
    """A refund nobody asked for here: its events record it once, and redeliveries change nothing."""
    deps = mongo_deps(db)
    refund = dashboard_refund(49900)
    stripe_of(deps).refunds.append(refund)
    charge = {**events.fixture("charge"), "payment_intent": "pi_paid", "amount_refunded": 49900, "refunded": True}
    refunded, created = refund_event("charge.refunded", charge), refund_event("refund.created", refund)
    for event in (refunded, created, refunded, created):
        assert process_event(event, deps) == "processed"
    after = payment(db)
    assert (after["status"], after["amountRefunded"], len(after["refunds"])) == ("refunded", 49900, 1)
    assert db.enrollments.find_one()["status"] == "cancelled"
    assert len(cast(RecordingOutbox, deps.outbox).keys("refund_confirmation")) == 1


def test_the_actor_and_the_event_count_one_refund_once(db: Any, paid: dict[str, Any]) -> None:
    """The refund.updated of our own refund, before or after the actor recorded it, is the same refund."""
    deps = mongo_deps(db)
    ask(deps, customer(paid), 15000)
    carry_out(deps)
    [refund] = stripe_of(deps).refunds
    process_event(refund_event("refund.updated", dict(refund)), deps)
    after = payment(db)
    assert (after["amountRefunded"], len(after["refunds"]), after["status"]) == (15000, 1, "partially_refunded")


def test_a_refund_that_fails_after_succeeding_is_taken_out(db: Any, paid: dict[str, Any]) -> None:
    """refund.failed for a counted refund gives the amount back; a late succeeded about it counts nothing."""
    deps = mongo_deps(db)
    refund = dashboard_refund(10000)
    process_event(refund_event("refund.created", refund), deps)
    assert payment(db)["amountRefunded"] == 10000
    failed = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    process_event(refund_event("refund.failed", failed), deps)
    process_event(refund_event("refund.updated", refund), deps)
    after = payment(db)
    assert (after["amountRefunded"], after["refunds"][0]["status"]) == (0, "failed")


def test_refund_events_for_payments_not_ours_are_ignored(db: Any, paid: dict[str, Any]) -> None:
    """A refund or a refunded charge of an intent this service did not create: ignored, nothing changed."""
    deps = mongo_deps(db)
    foreign = {**dashboard_refund(100), "payment_intent": "pi_someone_elses"}
    charge = {**events.fixture("charge"), "payment_intent": "pi_someone_elses"}
    for event in (refund_event("refund.created", foreign), refund_event("charge.refunded", charge)):
        assert process_event(event, deps) == "ignored"
    assert payment(db)["refunds"] == [] and payment(db)["status"] == "completed"


def test_a_request_whose_message_was_lost_is_sent_again_by_the_sweep(db: Any, paid: dict[str, Any]) -> None:
    """A pending request with no Stripe refund, older than the sweep's age, is queued again."""
    from usecases.sweeps import heal

    deps = mongo_deps(db)
    request_id = ask(deps, customer(paid), 100)
    db.payments.update_one({"_id": paid["_id"]}, {"$set": {"refunds.0.createdAt": now() - timedelta(hours=1)}})
    report = heal(deps, older_than=timedelta(minutes=5))
    assert report.refunds_requeued == 1
    assert cast(RecordingJobs, deps.jobs).refunds == [("pi_paid", request_id)] * 2


def test_paid_at_is_when_the_payment_first_completed(db: Any) -> None:
    """The refund window counts from the first completion, which a move to completed records once."""
    from adapters.mongo import MongoPayments

    ensure_all_indexes(db)
    db.payments.insert_one(pending_payment("pi_new"))
    payments = MongoPayments(db)
    fresh = payments.by_intent("pi_new")
    assert fresh is not None and payments.move(fresh, "completed", "evt_1", datetime(2026, 1, 1, tzinfo=UTC))
    moved = payments.by_intent("pi_new")
    assert moved is not None and moved.paid_at is not None
