"""The review queue over ``/ops/api/reviews`` (issue 9): list, activate anyway, refund, dismiss; audited.

Each action is resolved first (one conditional write) and only its winner acts; races are played
out by letting the other person act between one's read and one's write."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from adapters.audit import MongoAudit
from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from adapters.refunds import MongoRefunds
from adapters.settings import Settings
from domain.errors import RequestRefused
from domain.payments import Payment
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import FakeStripe, RecordingJobs, mongo_deps
from tests.integration.test_ops_api import AUTH, TOKEN, app_client
from usecases.inbox import process_event
from usecases.ports import Operator, Payments
from usecases.refunds import execute_refund
from usecases.reviews import act
from usecases.sweeps import heal


@pytest.fixture
def client(settings: Settings, db: Any) -> Iterator[TestClient]:
    ensure_all_indexes(db)
    yield from app_client(settings, db, TOKEN)


def flagged(db: Any, intent_id: str, reason: str) -> dict[str, Any]:
    """A completed payment held for review, as the worker leaves it."""
    doc = {**pending_payment(intent_id), "status": "completed", "paidAt": now(), "openKey": None,
           "reviewRequired": {"reason": reason, "eventId": "evt_1", "at": now()}}  # fmt: skip
    db.payments.insert_one(doc)
    return doc


def test_the_queue_lists_flags_and_each_action_resolves_once(client: TestClient, db: Any) -> None:
    """Listed with their reason; activate enrolls once, dismiss clears, a second action on one is 404."""
    mismatch = flagged(db, "pi_mismatch", "amount_mismatch")
    flagged(db, "pi_other", "metadata_mismatch")
    listed = client.get("/ops/api/reviews", headers=AUTH).json()["items"]
    assert sorted((i["paymentId"], i["reviewRequired"]["reason"]) for i in listed) == [
        ("pi_mismatch", "amount_mismatch"),
        ("pi_other", "metadata_mismatch"),
    ]
    activated = client.post("/ops/api/reviews/pi_mismatch/activate", headers=AUTH)
    assert activated.status_code == 200, activated.text
    enrollment = db.enrollments.find_one({"customerId": mismatch["customerId"]})
    assert enrollment["status"] == "active" and activated.json()["outcome"] == str(enrollment["_id"])
    assert db.payments.find_one({"paymentId": "pi_mismatch"})["reviewResolved"]["action"] == "activate"
    assert client.post("/ops/api/reviews/pi_mismatch/dismiss", headers=AUTH).status_code == 404
    assert client.post("/ops/api/reviews/pi_other/dismiss", headers=AUTH).status_code == 200
    assert client.get("/ops/api/reviews", headers=AUTH).json()["items"] == []
    actions = sorted(a["action"] for a in db.ops_audit.find())
    assert actions == ["review_activate", "review_dismiss"]


def test_a_flagged_payment_is_refunded_in_full_and_a_duplicate_is_never_activated(client: TestClient, db: Any) -> None:
    """refund records a full refund request for the refunds actor; activating a duplicate payment is 409."""
    flagged(db, "pi_refund_me", "amount_mismatch")
    flagged(db, "pi_duplicate", "duplicate_payment")
    refunded = client.post("/ops/api/reviews/pi_refund_me/refund", headers=AUTH)
    assert refunded.status_code == 200, refunded.text
    [request] = db.payments.find_one({"paymentId": "pi_refund_me"})["refunds"]
    assert (request["amount"], request["status"], request["refundRequestId"]) == (
        49900,
        "pending",
        refunded.json()["outcome"],
    )
    duplicate = client.post("/ops/api/reviews/pi_duplicate/activate", headers=AUTH)
    assert (duplicate.status_code, duplicate.json()["error"]["code"]) == (409, "conflict")
    assert client.post("/ops/api/reviews/pi_duplicate/frobnicate", headers=AUTH).status_code == 422


# Resolve first, then act -------------------------------------------------------------------------------------

ANA, BEN = Operator("Ana", "tests"), Operator("Ben", "tests")


class ReadThenWait:
    """Payments whose first read is followed, before the caller goes on, by ``between`` (another person's action)."""

    def __init__(self, inner: Payments, between: Callable[[], object]) -> None:
        self.inner = inner
        self.between: Callable[[], object] | None = between

    def by_intent(self, intent_id: str) -> Payment | None:
        found = self.inner.by_intent(intent_id)
        if self.between is not None:
            between, self.between = self.between, None
            between()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_refund_that_loses_the_resolve_to_an_activation_does_nothing(db: Any) -> None:
    """Ana asks for a refund; Ben activates between her read and her write: 409 for her, no refund made or queued."""
    ensure_all_indexes(db)
    doc = flagged(db, "pi_race", "amount_mismatch")
    deps, audit = mongo_deps(db), MongoAudit(db)
    bens = dataclasses.replace(deps)
    anas = dataclasses.replace(
        deps, payments=cast(Payments, ReadThenWait(deps.payments, lambda: act("pi_race", "activate", BEN, bens,
                                                                                 audit, now=now())))
    )  # fmt: skip
    with pytest.raises(RequestRefused) as lost:
        act("pi_race", "refund", ANA, anas, audit, now=now())
    assert lost.value.code == "conflict"
    after = db.payments.find_one({"_id": doc["_id"]})
    assert (after["refunds"], after.get("refundReserved", 0), cast(RecordingJobs, deps.jobs).refunds) == ([], 0, [])
    assert (after["reviewResolved"]["action"], after["reviewResolved"]["by"]) == ("activate", "Ben")
    assert db.enrollments.find_one({"customerId": doc["customerId"]})["status"] == "active"
    assert [(a["action"], a["who"]) for a in db.ops_audit.find()] == [("review_activate", "Ben")]


def test_an_activation_that_loses_the_resolve_to_a_refund_does_nothing(db: Any) -> None:
    """The other way round: Ben's refund wins, Ana's activation is 409 and nobody is enrolled."""
    ensure_all_indexes(db)
    doc = flagged(db, "pi_race", "amount_mismatch")
    deps, audit = mongo_deps(db), MongoAudit(db)
    anas = dataclasses.replace(
        deps, payments=cast(Payments, ReadThenWait(deps.payments, lambda: act("pi_race", "refund", BEN, deps, audit,
                                                                                 now=now())))
    )  # fmt: skip
    with pytest.raises(RequestRefused) as lost:
        act("pi_race", "activate", ANA, anas, audit, now=now())
    assert lost.value.code == "conflict"
    after = db.payments.find_one({"_id": doc["_id"]})
    assert (after["reviewResolved"]["action"], len(after["refunds"]), db.enrollments.count_documents({})) == (
        "refund",
        1,
        0,
    )


def test_a_review_refund_gives_back_what_stripe_took_not_the_price(db: Any) -> None:
    """Stripe took 600.00 for a 499.00 payment: the refund asks Stripe for the charge's rest and records 600.00."""
    ensure_all_indexes(db)
    flagged(db, "pi_over", "amount_mismatch")
    deps = mongo_deps(db, intents={"pi_over": {"id": "pi_over", "amount": 60000, "amount_received": 60000}})
    request_id = act("pi_over", "refund", ANA, deps, MongoAudit(db), now=now())
    assert cast(RecordingJobs, deps.jobs).refunds == [("pi_over", request_id)]
    execute_refund("pi_over", str(request_id), deps, holder="message-1")
    [refund] = cast(FakeStripe, deps.stripe).refunds
    assert refund["amount"] == 60000
    after = db.payments.find_one({"paymentId": "pi_over"})
    assert (after["status"], after["amountRefunded"], after["refundReserved"]) == ("refunded", 60000, 0)
    assert after["refunds"][0]["amount"] == 60000


def test_the_sweep_never_activates_a_dismissed_or_refunded_review(db: Any) -> None:
    """Completed, never activated, no longer flagged: a dismissed or refunded review still never activates."""
    ensure_all_indexes(db)
    flagged(db, "pi_dismissed", "amount_mismatch")
    flagged(db, "pi_refunded", "metadata_mismatch")
    deps, audit = mongo_deps(db), MongoAudit(db)
    act("pi_dismissed", "dismiss", ANA, deps, audit, now=now())
    act("pi_refunded", "refund", ANA, deps, audit, now=now())  # its refund not carried out yet
    db.payments.update_many({}, {"$set": {"updatedAt": now() - timedelta(hours=1)}})
    assert heal(deps, timedelta(minutes=1)).payments_activated == 0
    assert db.enrollments.count_documents({}) == 0
    assert db.payments.count_documents({"activatedAt": {"$ne": None}}) == 0


class ReservationCrashes(MongoRefunds):
    """Refunds whose first reservation never happens: the worker dies between flagging and reserving."""

    crashed = False

    def reserve(self, *args: Any, **kwargs: Any) -> bool:
        if not self.crashed:
            self.crashed = True
            raise ConnectionResetError("the worker died before the refund was reserved")
        return super().reserve(*args, **kwargs)


def test_a_duplicate_payments_refund_lost_to_a_crash_is_reserved_by_the_retry(db: Any) -> None:
    """Flagged duplicate, then the crash: the event's redelivery reserves the full refund and queues it, once."""
    ensure_all_indexes(db)
    first = pending_payment("pi_first")
    db.payments.insert_one(first)
    deps = dataclasses.replace(mongo_deps(db), refunds=ReservationCrashes(db))

    def succeeded(doc: dict[str, Any]) -> dict[str, Any]:
        intent = events.payment_intent("payment_intent.succeeded", doc["paymentId"], doc["amount"], doc["currency"],
                                       events.intent_metadata(doc))  # fmt: skip
        return events.event("payment_intent.succeeded", intent)

    process_event(succeeded(first), deps)
    second = {**first, "_id": pending_payment("pi_second")["_id"], "paymentId": "pi_second"}
    db.payments.insert_one(second)  # the same customer and service, paid again
    duplicate = succeeded(second)
    with pytest.raises(ConnectionResetError):
        process_event(duplicate, deps)
    flagged_only = db.payments.find_one({"_id": second["_id"]})
    assert (flagged_only["reviewRequired"]["reason"], flagged_only["refunds"]) == ("duplicate_payment", [])
    process_event(duplicate, deps)  # the message, redelivered
    process_event(duplicate, deps)  # and a duplicate of it
    healed = db.payments.find_one({"_id": second["_id"]})
    request_id = f"duplicate-{second['_id']}"
    assert [(r["refundRequestId"], r["amount"], r["status"]) for r in healed["refunds"]] == [
        (request_id, 49900, "pending")
    ]
    assert set(cast(RecordingJobs, deps.jobs).refunds) == {("pi_second", request_id)}
    assert db.enrollments.find_one()["paymentId"] == first["_id"]
