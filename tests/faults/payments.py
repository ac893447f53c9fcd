"""A run's payments: real intents at the local Stripe, stored as create-intent stores them, then paid.

Four stories, in fixed shares: paid at once with a card (``PAID``), declined for good
(``DECLINED``), declined then paid (``RETRIED``), and paid then refunded in full by the customer
through the API once activated (``REFUND``, see ``stream``). localstripe cannot confirm an intent again
after a card decline, so a retried payment's decline is a failed 3-D Secure authentication
(Stripe reports it as ``payment_intent.payment_failed`` too; localstripe sends no webhook for
it, so its event is built here from the intent exactly as Stripe then reported it).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from bson import ObjectId

from devstack.pay import pay
from payments_ops import events
from payments_ops.config import LOCAL_STRIPE_KEY
from payments_ops.simulate import pending_payment

PAID, DECLINED, RETRIED, REFUND = "paid", "declined", "declined then paid", "paid then refunded"
#: A test card that always asks for 3-D Secure (Stripe's 4000 0000 0000 3220).
THREE_D_SECURE = "4000000000003220"


@dataclass
class Payment:
    """One payment of a run: its stored document's ids, its story, and the emails' addresses."""

    record_id: ObjectId
    intent_id: str
    story: str
    customer_id: ObjectId
    customer_email: str
    specialist_email: str
    #: The decline of a ``RETRIED`` payment, as Stripe reported it (the later success comes from localstripe).
    decline: dict[str, Any] | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Set once its story has been played at the local Stripe.
    paid: threading.Event = field(default_factory=threading.Event, repr=False)


class LocalStripe:
    """The few calls of the local Stripe's API the runs need, made directly (never through a fault proxy)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {LOCAL_STRIPE_KEY}"}, timeout=30)

    def close(self) -> None:
        self.http.close()

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        body: dict[str, Any] = response.json() if response.content.strip() else {}
        return body

    def flush(self) -> None:
        """Forget every object (webhook registrations stay): each run starts as fast as the first."""
        self._ok(self.http.delete("/_config/data"))

    def create_intent(self, amount: int, currency: str, metadata: dict[str, str]) -> str:
        form = {"amount": str(amount), "currency": currency.lower()}
        form.update({f"metadata[{key}]": value for key, value in metadata.items()})
        return str(self._ok(self.http.post("/v1/payment_intents", data=form))["id"])

    def intent(self, intent_id: str) -> dict[str, Any]:
        return self._ok(self.http.get(f"/v1/payment_intents/{intent_id}"))

    def card(self, number: str) -> str:
        """A card PaymentMethod with ``number``; returns its id."""
        form = {"type": "card", "card[number]": number, "card[exp_month]": "12", "card[exp_year]": "2030"}
        return str(self._ok(self.http.post("/v1/payment_methods", data={**form, "card[cvc]": "123"}))["id"])

    def fail_authentication(self, intent_id: str, method: str) -> dict[str, Any]:
        """Confirm with a 3-D Secure card and fail the challenge; return the intent as Stripe then reports it."""
        self._ok(self.http.post(f"/v1/payment_intents/{intent_id}", data={"payment_method": method}))
        confirmed = self._ok(self.http.post(f"/v1/payment_intents/{intent_id}/confirm"))
        secret = confirmed["client_secret"]
        form = {"client_secret": secret, "success": "false"}
        self._ok(self.http.post(f"/v1/payment_intents/{intent_id}/_authenticate", data=form))
        return self.intent(intent_id)

    def refunds(self, intent_id: str) -> list[dict[str, Any]]:
        """Every refund Stripe made for the intent."""
        page = self._ok(self.http.get("/v1/refunds", params={"payment_intent": intent_id}))
        found: list[dict[str, Any]] = page["data"]
        return found

    def charge_refunded(self, intent_id: str) -> dict[str, Any]:
        """The ``charge.refunded`` event Stripe sends for the intent's charge as it stands now."""
        latest = self.intent(intent_id)["latest_charge"]
        charge = self._ok(self.http.get(f"/v1/charges/{latest['id'] if isinstance(latest, dict) else latest}"))
        return events.event("charge.refunded", charge)

    def events_since(self, created: int) -> list[dict[str, Any]]:
        """Every event created at or after ``created`` (whole seconds), oldest pages first."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, "created[gte]": created}
        while True:
            page = self._ok(self.http.get("/v1/events", params=params))
            found.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]


def stories(count: int, rng: random.Random) -> list[str]:
    """``count`` stories in random order: a fifth declined, a fifth declined then paid, a tenth refunded, rest paid."""
    fifth, tenth = max(1, count // 5), max(1, count // 10)
    drawn = [DECLINED] * fifth + [RETRIED] * fifth + [REFUND] * tenth + [PAID] * (count - 2 * fifth - tenth)
    rng.shuffle(drawn)
    return drawn


def prepare(stripe: LocalStripe, told: list[str]) -> list[Payment]:
    """An intent at the local Stripe per story, with its document's metadata; nothing stored yet."""
    tag = secrets.token_hex(3)
    prepared = []
    for number, story in enumerate(told):
        document = pending_payment("pi_pending")
        document.update(
            customerEmail=f"c{number}-{tag}@faults.test",
            specialistEmail=f"s{number}-{tag}@faults.test",
            serviceName=f"Course {number} {tag}",
            amountRefunded=0,
            refunds=[],
        )
        intent_id = stripe.create_intent(document["amount"], document["currency"], events.intent_metadata(document))
        document["paymentId"] = intent_id
        prepared.append(
            Payment(
                document["_id"],
                intent_id,
                story,
                document["customerId"],
                document["customerEmail"],
                document["specialistEmail"],
                document=document,
            )
        )
    return prepared


def store(db: Any, payments: list[Payment]) -> None:
    """Insert the payments' documents, as create-intent does before handing out the intent.

    A customer who will ask for a refund is a user of the MERN app too (the API looks callers up).
    """
    if payments:
        db.payments.insert_many([p.document for p in payments])
    users = [
        {"_id": p.customer_id, "email": p.customer_email, "name": "Fault Customer", "role": "customer"}
        for p in payments
        if p.story == REFUND
    ]
    if users:
        db.users.insert_many(users)


def paid_event(stripe_url: str, db: Any) -> dict[str, Any]:
    """A payment created at the local Stripe and stored pending, and the ``payment_intent.succeeded``
    event that pays for it (not sent: the test decides how it reaches the worker)."""
    stripe = LocalStripe(stripe_url)
    try:
        [payment] = prepare(stripe, [PAID])
    finally:
        stripe.close()
    store(db, [payment])
    document = payment.document
    metadata = events.intent_metadata(document)
    intent = events.payment_intent(
        "payment_intent.succeeded", payment.intent_id, document["amount"], document["currency"], metadata
    )
    return events.event("payment_intent.succeeded", intent)


def settle_payment(stripe: LocalStripe, payment: Payment, three_d_secure: str) -> None:
    """Play the payment's story at the local Stripe (which posts its webhooks to the ingress)."""
    if payment.story == DECLINED:
        assert pay(stripe.url, payment.intent_id, "pm_card_chargeCustomerFail") == "requires_payment_method"
        payment.paid.set()
        return
    if payment.story == RETRIED:
        declined = stripe.fail_authentication(payment.intent_id, three_d_secure)
        assert declined["status"] == "requires_payment_method" and declined["last_payment_error"], declined
        payment.decline = events.event("payment_intent.payment_failed", declined, created=int(time.time()))
    assert pay(stripe.url, payment.intent_id, "pm_card_visa") == "succeeded"
    payment.paid.set()
