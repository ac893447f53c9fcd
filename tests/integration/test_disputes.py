"""Disputes against MongoDB: any order and any duplicate of the events ends the same (issue 8)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, cast

import pytest

from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from domain.errors import RequestRefused
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import FakeStripe, RecordingJobs, RecordingOutbox, mongo_deps
from usecases.inbox import process_event
from usecases.refunds import Requester, execute_refund, request_refund

T0 = 1_780_000_000


@pytest.fixture
def paid(db: Any) -> dict[str, Any]:
    """A completed, activated payment with its charge, and its active enrollment."""
    ensure_all_indexes(db)
    doc = pending_payment(events.new_id("pi"))
    enrollment = db.enrollments.insert_one(
        {"customerId": doc["customerId"], "serviceId": doc["serviceId"], "status": "active", "paymentId": doc["_id"]}
    ).inserted_id
    doc.update(status="completed", paidAt=now(), activatedAt=now(), enrollmentId=enrollment, chargeId="ch_disputed")
    db.payments.insert_one(doc)
    return doc


def dispute_event(event_type: str, status: str, created: int, by_charge: bool = False) -> dict[str, Any]:
    dispute = events.fixture("dispute")
    dispute.update(
        id="dp_1",
        status=status,
        amount=49900,
        currency="inr",
        charge="ch_disputed",
        payment_intent=None if by_charge else "pi_x",
        evidence_details={**dispute["evidence_details"], "due_by": T0 + 7 * 86400},
    )
    return events.event(event_type, dispute, created=created)


def story(paid: dict[str, Any], outcome: str) -> list[dict[str, Any]]:
    """created, updated and closed for one dispute on ``paid``, in Stripe's order."""
    evts = [
        dispute_event("charge.dispute.created", "needs_response", T0),
        dispute_event("charge.dispute.updated", "under_review", T0 + 10),
        dispute_event("charge.dispute.closed", outcome, T0 + 20),
    ]
    for event in evts:
        event["data"]["object"]["payment_intent"] = paid["paymentId"]
    return evts


def state(db: Any, paid: dict[str, Any]) -> tuple[str, str, str]:
    payment = db.payments.find_one({"_id": paid["_id"]})
    return (
        payment["status"],
        db.enrollments.find_one({"_id": paid["enrollmentId"]})["status"],
        payment["dispute"]["status"],
    )


def test_an_open_dispute_suspends_and_refunds_are_refused(db: Any, paid: dict[str, Any]) -> None:
    """created: the payment is disputed, its enrollment suspended, specialist and ops told; a refund gets 409."""
    deps = mongo_deps(db)
    process_event(story(paid, "won")[0], deps)
    assert state(db, paid) == ("disputed", "suspended", "needs_response")
    stored = db.payments.find_one({"_id": paid["_id"]})["dispute"]
    assert (stored["id"], stored["reason"], stored["amount"], stored["statusBefore"]) == (
        "dp_1",
        "general",
        49900,
        "completed",
    )
    assert stored["dueBy"].timestamp() == T0 + 7 * 86400
    outbox = cast(RecordingOutbox, deps.outbox)
    assert outbox.recipients("dispute_opened") == {paid["specialistEmail"], "ops@example.test"}
    with pytest.raises(RequestRefused, match="under dispute"):
        request_refund(
            paid["paymentId"], Requester("admin", "admin"), None, None, deps, now=now(), window=timedelta(30)
        )


@pytest.mark.parametrize(
    ("outcome", "final"),
    [
        ("won", ("completed", "active", "won")),
        ("warning_closed", ("completed", "active", "warning_closed")),
        ("lost", ("dispute_lost", "cancelled", "lost")),
    ],
)
def test_every_order_and_duplicate_of_the_events_ends_the_same(
    db: Any, paid: dict[str, Any], outcome: str, final: tuple[str, str, str]
) -> None:
    """All 6 orders of created/updated/closed, each delivered twice: the same payment, enrollment and dispute."""
    for order in itertools.permutations(range(3)):
        db.payments.update_one({"_id": paid["_id"]}, {"$set": {"status": "completed"}, "$unset": {"dispute": ""}})
        db.enrollments.update_one({"_id": paid["enrollmentId"]}, {"$set": {"status": "active"}})
        db.stripe_events.delete_many({})
        deps = mongo_deps(db)
        evts = story(paid, outcome)
        for index in (*order, *order):
            assert process_event(evts[index], deps) == "processed"
        assert state(db, paid) == final, order
        if outcome == "lost":
            assert cast(RecordingOutbox, deps.outbox).recipients("dispute_closed") == {paid["specialistEmail"]}


def test_a_won_dispute_gives_back_a_partial_refund_status(db: Any, paid: dict[str, Any]) -> None:
    """A payment partly refunded before its dispute goes back to partially_refunded when the dispute is won."""
    db.payments.update_one({"_id": paid["_id"]}, {"$set": {"status": "partially_refunded", "amountRefunded": 100}})
    deps = mongo_deps(db)
    for event in story(paid, "won"):
        process_event(event, deps)
    assert state(db, paid) == ("partially_refunded", "active", "won")


def test_funds_events_are_recorded(db: Any, paid: dict[str, Any]) -> None:
    """funds_withdrawn and funds_reinstated are kept on the stored dispute."""
    deps = mongo_deps(db)
    created = story(paid, "won")[0]
    withdrawn = dispute_event("charge.dispute.funds_withdrawn", "needs_response", T0 + 1)
    withdrawn["data"]["object"]["payment_intent"] = paid["paymentId"]
    process_event(created, deps)
    process_event(withdrawn, deps)
    assert db.payments.find_one({"_id": paid["_id"]})["dispute"]["fundsWithdrawn"] is True


def test_a_dispute_naming_only_its_charge_finds_the_payment(db: Any, paid: dict[str, Any]) -> None:
    """Disputes name their charge and intent; with only the charge the payment is found by its chargeId."""
    event = dispute_event("charge.dispute.created", "needs_response", T0, by_charge=True)
    assert process_event(event, mongo_deps(db)) == "processed"
    assert state(db, paid)[0] == "disputed"


def test_disputes_of_payments_not_ours_are_ignored(db: Any, paid: dict[str, Any]) -> None:
    """A dispute whose intent and charge this service does not know: ignored, nothing changed."""
    event = dispute_event("charge.dispute.created", "needs_response", T0)
    event["data"]["object"].update(payment_intent="pi_elsewhere", charge="ch_elsewhere")
    assert process_event(event, mongo_deps(db)) == "ignored"
    assert db.payments.find_one({"_id": paid["_id"]})["status"] == "completed"


def refund_event(paid: dict[str, Any], amount: int, created: int) -> dict[str, Any]:
    """refund.created for a refund of ``paid`` (made before the dispute, its event late)."""
    refund = events.fixture("refund")
    refund.update(
        id=f"re_{amount}", amount=amount, payment_intent=paid["paymentId"], status="succeeded", currency="inr"
    )
    return events.event("refund.created", refund, created=created)


def refusal(db: Any, paid: dict[str, Any], deps: Any) -> str | None:
    """The refusal code of an admin's full refund request now, None if it was accepted (and then undone)."""
    try:
        request_refund(paid["paymentId"], Requester("admin", "admin"), None, None, deps, now=now(), window=WINDOW)
    except RequestRefused as error:
        return error.code
    db.payments.update_one({"_id": paid["_id"]}, {"$set": {"refundReserved": 0}, "$pull": {"refunds": {"id": None}}})
    return None


WINDOW = timedelta(days=30)


def carry_out(deps: Any) -> None:
    """The refunds actor's run of every request asked for so far (a redelivery is the same message)."""
    for intent_id, request_id in cast(RecordingJobs, deps.jobs).refunds:
        execute_refund(intent_id, request_id, deps, holder=f"message-{request_id}")


def test_a_full_refund_recorded_during_the_dispute_then_won_ends_refunded_and_cancelled(
    db: Any, paid: dict[str, Any]
) -> None:
    """The refund counts but the payment stays disputed while open; won, it is refunded and the enrollment cancelled."""
    deps = mongo_deps(db)
    created, updated, closed = story(paid, "won")
    process_event(created, deps)
    process_event(refund_event(paid, 49900, T0 + 5), deps)
    after = db.payments.find_one({"_id": paid["_id"]})
    assert (after["status"], after["amountRefunded"]) == ("disputed", 49900)
    assert state(db, paid) == ("disputed", "suspended", "needs_response")
    process_event(updated, deps)
    process_event(closed, deps)
    assert state(db, paid) == ("refunded", "cancelled", "won")
    assert db.enrollments.find_one({"_id": paid["enrollmentId"]})["paymentStatus"] == "refunded"
    assert refusal(db, paid, deps) == "not_refundable"


def test_a_partial_refund_recorded_during_the_dispute_keeps_it_disputed(db: Any, paid: dict[str, Any]) -> None:
    """Disputed (counted as such in statistics), refunds refused; won, partially_refunded and the enrollment back."""
    from adapters.statistics import MongoStatistics

    deps = mongo_deps(db)
    created, _, closed = story(paid, "won")
    process_event(created, deps)
    process_event(refund_event(paid, 20000, T0 + 5), deps)
    assert state(db, paid) == ("disputed", "suspended", "needs_response")
    assert db.payments.find_one({"_id": paid["_id"]})["amountRefunded"] == 20000
    assert refusal(db, paid, deps) == "not_refundable"
    [totals] = MongoStatistics(db).earnings(paid["specialistId"], None, None)["totals"]
    assert (totals["refunded"], totals["disputed"]) == (20000, 49900)
    process_event(closed, deps)
    assert state(db, paid) == ("partially_refunded", "active", "won")


def test_a_refund_made_before_the_dispute_whose_worker_died_is_recorded_after_it(db: Any, paid: dict[str, Any]) -> None:
    """Asked and made at Stripe before the dispute, the worker dead before recording it; Stripe's
    ``charge.refunded`` records it after the dispute opened: disputed meanwhile, refunded once won."""
    deps = mongo_deps(db)
    request_refund(paid["paymentId"], Requester("admin", "admin"), None, None, deps, now=now(), window=WINDOW)
    stripe = cast(FakeStripe, deps.stripe)
    stripe.crash_after_refund = True
    with pytest.raises(ConnectionResetError):
        carry_out(deps)
    created, _, closed = story(paid, "won")
    process_event(created, deps)
    charge = {**events.fixture("charge"), "id": "ch_disputed", "payment_intent": paid["paymentId"], "refunded": True}
    process_event(events.event("charge.refunded", charge, created=T0 + 5), deps)
    assert state(db, paid) == ("disputed", "suspended", "needs_response")
    assert db.payments.find_one({"_id": paid["_id"]})["amountRefunded"] == 49900
    process_event(closed, deps)
    assert state(db, paid) == ("refunded", "cancelled", "won")
    assert len(stripe.refunds) == 1


@pytest.mark.parametrize(
    ("outcome", "refunded", "final"),
    [
        ("won", 49900, ("refunded", "cancelled")),
        ("warning_closed", 49900, ("refunded", "cancelled")),
        ("won", 20000, ("partially_refunded", "active")),
        ("lost", 49900, ("dispute_lost", "cancelled")),
        ("lost", 20000, ("dispute_lost", "cancelled")),
    ],
)
def test_refund_and_dispute_events_in_any_order_end_the_same(
    db: Any, paid: dict[str, Any], outcome: str, refunded: int, final: tuple[str, str]
) -> None:
    """created, a refund's event and closed in all 6 orders, each twice: one end; refunds refused while open."""
    for order in itertools.permutations(range(3)):
        db.payments.update_one(
            {"_id": paid["_id"]},
            {"$set": {"status": "completed", "amountRefunded": 0, "refunds": []}, "$unset": {"dispute": ""}},
        )
        db.enrollments.update_one(
            {"_id": paid["enrollmentId"]}, {"$set": {"status": "active"}, "$unset": {"suspendedBy": ""}}
        )
        db.stripe_events.delete_many({})
        deps = mongo_deps(db)
        created, _, closed = story(paid, outcome)
        evts = [created, refund_event(paid, refunded, T0 + 5), closed]
        seen: set[int] = set()
        for index in (*order, *order):
            assert process_event(evts[index], deps) == "processed"
            seen.add(index)
            if 0 in seen and 2 not in seen:  # the dispute is open
                assert db.payments.find_one({"_id": paid["_id"]})["status"] == "disputed", order
                assert refusal(db, paid, deps) == "not_refundable", order
        payment = db.payments.find_one({"_id": paid["_id"]})
        assert (payment["status"], db.enrollments.find_one({"_id": paid["enrollmentId"]})["status"]) == final, order
        assert payment["amountRefunded"] == refunded, order
