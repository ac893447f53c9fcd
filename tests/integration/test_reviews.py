"""The review queue over ``/ops/api/reviews`` (issue 9): list, activate anyway, refund, dismiss; audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.mongo import now
from adapters.settings import Settings
from adapters.wiring import ensure_all_indexes
from devstack.send_event import pending_payment
from tests.integration.test_ops_api import AUTH, TOKEN, app_client


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
