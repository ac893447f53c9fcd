"""Refunds against MongoDB: asked once, carried out once, recorded once, in any order (issue 8).

The use cases on the real MongoDB adapters; Stripe is a dumb store of intents and refunds.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from dramatiq.common import current_millis

from adapters.dead_workers import attempt_over
from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from adapters.queue import Broker
from adapters.reads import MongoPaymentReads
from adapters.refunds import MongoRefunds
from domain.errors import ProviderRefused, RequestRefused, RetryLater
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import Attempts, CrashAfterCount, FakeStripe, RecordingJobs, RecordingOutbox, mongo_deps
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
    """The run holding the request keeps it while it runs, even against its own message coming back (redelivered
    while its live worker was cut off); once that run is over, the next one carries it out, once."""
    attempts = Attempts()
    deps = mongo_deps(db, attempts=attempts)
    request_id = ask(deps, customer(paid), 10000)
    pending = deps.payments.by_intent("pi_paid")
    attempts.running.add("message-a")
    assert pending is not None and deps.refunds.claim(pending, request_id, "message-a")
    for holder in ("message-b", "message-a"):
        with pytest.raises(RetryLater, match="another run"):
            execute_refund("pi_paid", request_id, deps, holder=holder)
    assert stripe_of(deps).refunds == []
    attempts.running.discard("message-a")  # its worker died, or the run failed without a word: known over
    execute_refund("pi_paid", request_id, deps, holder="message-b")  # b's retry takes the claim at once
    execute_refund("pi_paid", request_id, deps, holder="message-a")  # a's redelivery: already carried out
    assert len(stripe_of(deps).refunds) == 1
    assert payment(db)["amountRefunded"] == 10000


def test_a_request_held_by_a_dead_worker_is_taken_over_at_once(db: Any, paid: dict[str, Any], broker: Broker) -> None:
    """The claim names the run's worker, queue and message: a live worker's stays, a dead worker's goes at once."""
    deps = dataclasses.replace(mongo_deps(db), refunds=MongoRefunds(db, functools.partial(attempt_over, broker)))
    request_id = ask(deps, customer(paid), 10000)
    heartbeats, acks = f"{broker.namespace}:__heartbeats__", f"{broker.namespace}:__acks__.worker-a.refunds"
    broker.client.zadd(heartbeats, {"worker-a": current_millis()})
    broker.client.sadd(acks, "r1")
    pending = deps.payments.by_intent("pi_paid")
    assert pending is not None and deps.refunds.claim(pending, request_id, "worker-a:refunds:r1")
    with pytest.raises(RetryLater, match="another run"):
        execute_refund("pi_paid", request_id, deps, holder="worker-a:refunds:r1")  # its own message, back
    broker.client.zadd(heartbeats, {"worker-a": 0})  # worker-a's heartbeat stopped: Dramatiq takes it for dead
    execute_refund("pi_paid", request_id, deps, holder="worker-b:refunds:r1")
    assert len(stripe_of(deps).refunds) == 1 and payment(db)["amountRefunded"] == 10000


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


# A failed refund is final, and what a request holds is given back exactly once.

STRIPE_STATUS = {"refund.failed": "failed", "refund.created": "pending", "refund.updated": "succeeded"}


def refund_story(refund: dict[str, Any], order: tuple[str, ...], deps: Deps) -> None:
    """Deliver one refund's events in ``order``, each with the status Stripe gives it in that event."""
    for event_type in order:
        obj = {**refund, "status": STRIPE_STATUS[event_type]}
        if event_type == "refund.failed":
            obj["failure_reason"] = "expired_or_canceled_card"
        assert process_event(refund_event(event_type, obj), deps) == "processed"


@pytest.mark.parametrize(
    "order",
    [("refund.failed", "refund.created", "refund.updated"), ("refund.failed", "refund.updated", "refund.created")],
)
def test_a_request_whose_refund_failed_first_stays_failed_and_is_released_once(
    db: Any, paid: dict[str, Any], order: tuple[str, ...]
) -> None:
    """refund.failed seen first (through the link) releases the hold, tells the requester; later events count none."""
    deps = mongo_deps(db)
    request_id = ask(deps, customer(paid), 10000)
    refund = {**dashboard_refund(10000), "metadata": {"refundRequestId": request_id}}
    refund_story(refund, order, deps)
    carry_out(deps)  # the request's own message comes last: Stripe is not asked again
    after = payment(db)
    [entry] = after["refunds"]
    assert (entry["status"], entry["id"], entry["counted"]) == ("failed", refund["id"], False)
    assert (after["amountRefunded"], after["refundReserved"], after["status"]) == (0, 0, "completed")
    assert db.enrollments.find_one()["status"] == "active"
    outbox = cast(RecordingOutbox, deps.outbox)
    assert outbox.keys("refund_confirmation") == set() and outbox.keys("refund_notice") == set()
    assert outbox.keys("refund_refused") == {f"{paid['_id']}:refund_refused:{request_id}"}
    assert stripe_of(deps).refunds == []
    assert ask(deps, customer(paid), None)  # all of it is refundable again


def test_a_dashboard_refund_that_failed_first_is_never_counted(db: Any, paid: dict[str, Any]) -> None:
    """refund.failed, then an older created and updated: the refund stays failed and nothing is refunded."""
    deps = mongo_deps(db)
    refund_story(dashboard_refund(49900), ("refund.failed", "refund.created", "refund.updated"), deps)
    after = payment(db)
    assert (after["refunds"][0]["status"], after["amountRefunded"], after["refundReserved"]) == ("failed", 0, 0)
    assert (after["status"], db.enrollments.find_one()["status"]) == ("completed", "active")
    assert cast(RecordingOutbox, deps.outbox).keys("refund_confirmation") == set()


def test_a_refusal_of_a_refund_stripe_made_adopts_the_refund(db: Any, paid: dict[str, Any]) -> None:
    """Stripe made the refund yet the call ended in a refusal: it is recorded once, never refused then counted."""
    deps = mongo_deps(db)
    ask(deps, customer(paid), 10000)
    stripe_of(deps).fail_after_refund = ProviderRefused("Charge ch_1 has already been refunded.")
    carry_out(deps)
    [refund] = stripe_of(deps).refunds
    process_event(refund_event("refund.created", dict(refund)), deps)
    after = payment(db)
    assert (after["amountRefunded"], after["refundReserved"], after["status"]) == (10000, 0, "partially_refunded")
    assert after["refunds"][0]["status"] == "succeeded"
    outbox = cast(RecordingOutbox, deps.outbox)
    assert outbox.keys("refund_refused") == set() and len(outbox.keys("refund_confirmation")) == 1
    with pytest.raises(RequestRefused, match="39900 is left"):
        ask(deps, customer(paid), 39901)


def test_a_stripe_error_after_the_refund_was_made_is_retried_never_refused(db: Any, paid: dict[str, Any]) -> None:
    """A 409 or a timeout (RetryLater from the gateway) leaves the request pending; its retry adopts the refund."""
    deps = mongo_deps(db)
    ask(deps, customer(paid), 10000)
    stripe_of(deps).fail_after_refund = RetryLater("Stripe: the idempotency key is in use by another request")
    with pytest.raises(RetryLater):
        carry_out(deps)
    assert (payment(db)["refunds"][0]["status"], payment(db)["refundReserved"]) == ("pending", 10000)
    db.payments.update_one({"_id": paid["_id"]}, {"$set": {"refunds.0.claimUntil": None}})  # its lease ran out
    carry_out(deps)
    after = payment(db)
    assert (after["amountRefunded"], after["refundReserved"], len(stripe_of(deps).refunds)) == (10000, 0, 1)
    assert cast(RecordingOutbox, deps.outbox).keys("refund_refused") == set()


# A crash never skips what follows a money movement.


def test_a_crash_right_after_the_refund_was_recorded_is_finished_on_redelivery(db: Any, paid: dict[str, Any]) -> None:
    """Killed just after "refund recorded": the redelivery moves the payment, cancels the enrollment, emails both."""
    deps = dataclasses.replace(mongo_deps(db), refunds=CrashAfterCount(db))
    ask(deps, customer(paid), None)
    with pytest.raises(ConnectionResetError):
        carry_out(deps)
    assert (payment(db)["amountRefunded"], payment(db)["status"]) == (49900, "completed")  # counted, nothing after
    carry_out(deps)  # the message, redelivered
    carry_out(deps)  # and a duplicate of it
    after = payment(db)
    assert (after["status"], after["amountRefunded"], after["refundReserved"]) == ("refunded", 49900, 0)
    assert db.enrollments.find_one()["status"] == "cancelled"
    outbox = cast(RecordingOutbox, deps.outbox)
    assert outbox.keys("refund_confirmation") == {f"{paid['_id']}:refund_confirmation:re_1"}
    assert outbox.keys("refund_notice") == {f"{paid['_id']}:refund_notice:re_1"}
    assert len(stripe_of(deps).refunds) == 1


def test_a_refund_recorded_but_never_finished_is_finished_by_the_sweep(db: Any, paid: dict[str, Any]) -> None:
    """No redelivery: the sweep finds the refunded payment whose enrollment is active and emails unqueued, once."""
    from usecases.sweeps import heal

    deps = dataclasses.replace(mongo_deps(db), refunds=CrashAfterCount(db))
    ask(deps, customer(paid), None)
    with pytest.raises(ConnectionResetError):
        carry_out(deps)
    assert heal(deps, older_than=timedelta(0)).refunds_finished == 1
    after = payment(db)
    assert (after["status"], db.enrollments.find_one()["status"]) == ("refunded", "cancelled")
    outbox = cast(RecordingOutbox, deps.outbox)
    assert len(outbox.keys("refund_confirmation")) == 1 and len(outbox.keys("refund_notice")) == 1
    assert heal(deps, older_than=timedelta(0)).refunds_finished == 0  # finished: left alone


def age_requests(db: Any, paid: dict[str, Any]) -> None:
    db.payments.update_one({"_id": paid["_id"]}, {"$set": {"refunds.0.createdAt": now() - timedelta(hours=1)}})


def test_a_stale_request_is_requeued_once_a_round_however_many_workers_sweep(db: Any, paid: dict[str, Any]) -> None:
    """Every worker sweeps every minute; a stale request goes back to the queue once per sweep age, not per worker."""
    from usecases.sweeps import heal

    deps = mongo_deps(db)
    request_id = ask(deps, customer(paid), 100)
    age_requests(db, paid)
    reports = [heal(deps, older_than=timedelta(minutes=5)) for _worker in range(3)]
    assert [r.refunds_requeued for r in reports] == [1, 0, 0]
    assert cast(RecordingJobs, deps.jobs).refunds == [("pi_paid", request_id)] * 2


def test_a_request_never_carried_out_is_failed_after_its_requeues_and_everyone_told(
    db: Any, paid: dict[str, Any]
) -> None:
    """Requeued at most N times, then failed with a reason, its hold released once, ops and the requester emailed."""
    from usecases.sweeps import heal

    deps = mongo_deps(db)
    ask(deps, customer(paid), 10000)
    age_requests(db, paid)
    reports = [heal(deps, older_than=timedelta(0), max_refund_requeues=3) for _round in range(5)]
    assert [(r.refunds_requeued, r.refunds_failed) for r in reports] == [(1, 0), (1, 0), (1, 0), (0, 1), (0, 0)]
    assert len(cast(RecordingJobs, deps.jobs).refunds) == 1 + 3
    after = payment(db)
    [entry] = after["refunds"]
    assert entry["status"] == "failed" and "could not be carried out" in entry["failureReason"]
    assert (after["refundReserved"], after["amountRefunded"], after["status"]) == (0, 0, "completed")
    outbox = cast(RecordingOutbox, deps.outbox)
    assert outbox.recipients("ops_refund_failed") == {"ops@example.test"}
    assert outbox.recipients("refund_refused") == {paid["customerEmail"]}
    [shown] = MongoPaymentReads(db).given_up_refunds()  # the dashboard's list
    assert (shown["paymentId"], shown["amount"]) == ("pi_paid", 10000)
    assert shown["refundRequestId"] == entry["refundRequestId"]
    carry_out(deps)  # its messages, still queued: nothing is made at Stripe
    assert stripe_of(deps).refunds == [] and payment(db)["refundReserved"] == 0


def test_a_stale_request_stripe_did_refund_is_recorded_not_failed(db: Any, paid: dict[str, Any]) -> None:
    """Before giving up, Stripe is asked: a refund it made for the request is recorded, never failed."""
    from usecases.sweeps import heal

    deps = mongo_deps(db)
    ask(deps, customer(paid), 10000)
    stripe_of(deps).crash_after_refund = True
    with pytest.raises(ConnectionResetError):
        carry_out(deps)
    db.payments.update_one({"_id": paid["_id"]}, {"$set": {"refunds.0.claimUntil": None}})  # its lease ran out
    age_requests(db, paid)
    report = heal(deps, older_than=timedelta(0), max_refund_requeues=0)
    assert (report.refunds_requeued, report.refunds_failed) == (0, 0)
    after = payment(db)
    assert (after["refunds"][0]["status"], after["amountRefunded"], after["refundReserved"]) == ("succeeded", 10000, 0)
    assert cast(RecordingOutbox, deps.outbox).keys("refund_refused") == set()
