"""Refund requests are rate-limited per user and per payment, and a customer cannot claim fraud.

The real app (``POST /api/payments/{paymentId}/refund``) on the test Redis and MongoDB, with the
default limits (``REFUND_RATE_LIMIT_PER_MINUTE`` 5, ``REFUND_PAYMENT_RATE_LIMIT_PER_MINUTE`` 3).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.mongo import now
from adapters.queue import build_broker
from adapters.settings import Settings
from ingress.composition import create_app
from payments_ops.simulate import pending_payment
from tests.integration.api_support import JWT_SECRET, FakeGateway, Seeded, bearer, seed


@dataclasses.dataclass
class Refunds:
    client: TestClient
    seeded: Seeded
    db: Any

    def paid(self) -> str:
        """A fresh payment of 49900 INR by the seeded customer of the seeded specialist, completed a day ago."""
        intent_id = f"pi_limits{secrets.token_hex(8)}"
        doc = pending_payment(intent_id)
        day_ago = now() - timedelta(days=1)
        doc.update(
            customerId=self.seeded.customer,
            specialistId=self.seeded.specialist,
            status="completed",
            paidAt=day_ago,
            activatedAt=day_ago,
            openKey=None,
        )
        self.db.payments.insert_one(doc)
        return intent_id

    def ask(self, intent_id: str, headers: dict[str, str], **body: Any) -> Any:
        return self.client.post(f"/api/payments/{intent_id}/refund", json=body, headers=headers)

    def requests_on(self, intent_id: str) -> int:
        return len(self.db.payments.find_one({"paymentId": intent_id})["refunds"])


@pytest.fixture
def refunds(settings: Settings, db: Any) -> Iterator[Refunds]:
    """The app with the default refund limits (only the JWT secret changed)."""
    broker = build_broker(settings)
    app = create_app(
        dataclasses.replace(settings, jwt_secret=JWT_SECRET), broker=broker, db=db, stripe_gateway=FakeGateway()
    )
    with TestClient(app) as client:
        yield Refunds(client, seed(db), db)
    broker.flush_all()
    broker.close()


def test_25_one_unit_refunds_by_a_customer_make_5_requests(refunds: Refunds) -> None:
    """Twenty-five one-unit refunds in a row over five payments: the first five are taken, the rest 429."""
    customer = bearer(refunds.seeded.customer)
    payments = [refunds.paid() for _ in range(5)]
    answers = [refunds.ask(payments[i % 5], customer, amount=1) for i in range(25)]
    assert [a.status_code for a in answers] == [202] * 5 + [429] * 20
    limited = answers[-1]
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    assert sum(refunds.requests_on(p) for p in payments) == 5


def test_one_payment_takes_three_refund_requests_a_minute_whoever_asks(refunds: Refunds) -> None:
    """A stranger's three tries (404, not counted), then the customer twice and the specialist twice on one
    payment: the fourth request of its parties is 429; the specialist's own limit is not spent."""
    intent_id = refunds.paid()
    stranger = refunds.db.users.insert_one({"email": "s@example.test", "role": "customer"}).inserted_id
    assert [refunds.ask(intent_id, bearer(stranger), amount=1).status_code for _ in range(3)] == [404] * 3
    customer = bearer(refunds.seeded.customer)
    specialist = bearer(refunds.seeded.specialist, "specialist")
    codes = [refunds.ask(intent_id, who, amount=1).status_code for who in (customer, customer, specialist, specialist)]
    assert codes == [202, 202, 202, 429]
    assert refunds.requests_on(intent_id) == 3
    assert refunds.ask(refunds.paid(), specialist, amount=1).status_code == 202


def test_a_customer_may_not_give_fraudulent_as_the_reason(refunds: Refunds) -> None:
    """``reason: fraudulent`` from the customer: 422 naming ``reason``, nothing recorded; the specialist may."""
    intent_id = refunds.paid()
    refused = refunds.ask(intent_id, bearer(refunds.seeded.customer), amount=1, reason="fraudulent")
    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"].get("field")) == (
        422,
        "validation_error",
        "reason",
    )
    assert refunds.requests_on(intent_id) == 0
    for reason in ("requested_by_customer", "duplicate", "changed my mind"):
        assert refunds.ask(intent_id, bearer(refunds.seeded.customer), amount=1, reason=reason).status_code == 202
    other = refunds.paid()
    flagged = refunds.ask(other, bearer(refunds.seeded.specialist, "specialist"), amount=1, reason="fraudulent")
    assert flagged.status_code == 202
    assert refunds.db.payments.find_one({"paymentId": other})["refunds"][0]["reason"] == "fraudulent"
