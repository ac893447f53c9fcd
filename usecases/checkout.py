"""create-intent and confirm-payment: prices from the catalog, one intent per customer and service.

One open payment per (customer, service) is held by the database (a unique open slot), not by
Stripe's idempotency alone: two concurrent requests end with one payment and one intent. The
payment document exists before Stripe is called, and the intent's idempotency key is derived
from it, so a retried creation returns the same intent where Stripe honours the key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.checkout import Service, quote
from domain.errors import RequestRefused
from domain.events import SOURCE
from domain.payments import REUSABLE, Party
from usecases.activation import settle_with_stripe
from usecases.ports import CheckoutDeps, Draft

log = logging.getLogger(__name__)

#: How long a request waits for a concurrent request to finish creating the same intent.
WAIT_FOR_CREATOR = 10.0


@dataclass(frozen=True)
class IntentAnswer:
    client_secret: str
    payment_id: str
    amount: int
    currency: str
    status: str


def create_intent(
    customer_id: Any, service_id: Any, service_type: str, client_amount: int | None, deps: CheckoutDeps
) -> IntentAnswer:
    """Price the service, refuse what must be refused, reuse or create the customer's intent.

    A payment already holding the customer's slot is handed back as it is; while it is still
    reusable its amount is brought up to the current price. One that is processing, or paid and
    waiting for its activation, comes back with its own status and amount: never a second intent.
    """
    priced = quote(deps.catalog.service(service_id), service_type, client_amount)
    service, amount = priced.service, priced.amount
    if deps.checkout.is_enrolled(customer_id, service.id):
        raise RequestRefused("already_enrolled", "already enrolled in this service")

    deadline = time.monotonic() + WAIT_FOR_CREATOR
    while time.monotonic() < deadline:
        draft = deps.checkout.open_payment(customer_id, service.id)
        if draft is None:
            customer = deps.catalog.user(customer_id) or Party(customer_id)
            specialist = deps.catalog.user(service.specialist_id) or Party(service.specialist_id)
            draft = deps.checkout.insert_pending(customer, specialist, service, amount)
            if draft is not None:
                return _create(draft, customer_id, service, deps)
        elif draft.intent_id is not None:
            return _reuse(draft, amount, deps)
        elif not draft.creating and deps.checkout.claim_creation(draft.record_id):
            return _create(draft, customer_id, service, deps)
        time.sleep(0.1)  # another request holds the slot and is creating its intent right now
    raise RequestRefused("conflict", "another request for this payment is still in progress; retry")


def _create(draft: Draft, customer_id: Any, service: Service, deps: CheckoutDeps) -> IntentAnswer:
    metadata = {
        "paymentRecordId": str(draft.record_id),
        "customerId": str(customer_id),
        "serviceId": str(service.id),
        "serviceType": service.type,
        "specialistId": str(service.specialist_id),
        "source": SOURCE,
    }
    try:
        intent = deps.intents.create_payment_intent(
            draft.amount, draft.currency, metadata, idempotency_key=f"intent:{draft.record_id}"
        )
    except Exception:
        deps.checkout.release_creation(draft.record_id)
        raise
    deps.checkout.attach_intent(draft.record_id, str(intent["id"]))
    log.info("intent created", extra={"payment_id": intent["id"], "outcome": "created"})
    return IntentAnswer(str(intent["client_secret"]), str(intent["id"]), draft.amount, draft.currency, draft.status)


def _reuse(draft: Draft, amount: int, deps: CheckoutDeps) -> IntentAnswer:
    assert draft.intent_id is not None
    if draft.status in REUSABLE and draft.amount != amount:
        # The price changed since the intent was made: bring the open intent up to date.
        intent = deps.intents.update_payment_intent_amount(draft.intent_id, amount)
        deps.checkout.set_amount(draft.record_id, amount)
    else:
        # Same price, or an intent already processing or paid: Stripe keeps its amount, and so do we.
        intent = deps.intents.retrieve_payment_intent(draft.intent_id)
        amount = draft.amount
    log.info("intent reused", extra={"payment_id": draft.intent_id, "outcome": "reused", "status": draft.status})
    return IntentAnswer(str(intent["client_secret"]), draft.intent_id, amount, draft.currency, draft.status)


def confirm_payment(
    customer_id: Any, intent_id: str, deps: CheckoutDeps, *, now: datetime | None = None
) -> tuple[str, Any]:
    """Ask Stripe where the caller's intent is; if it succeeded, run the activation now.

    Returns the payment's status and its enrollment id (None until active). The activation is
    not ``webhookVerified``: the signed webhook, when it arrives, sets that and sends nothing more.
    ``now`` (when Stripe is asked; the clock's time by default) is recorded as the payment's last
    event time, as a webhook's is.
    """
    core = deps.core
    payment = core.payments.by_intent(intent_id)
    if payment is None or payment.customer.id != customer_id:
        raise RequestRefused("not_found", "payment not found", "paymentIntentId")
    intent = deps.intents.retrieve_payment_intent(intent_id)
    payment, enrollment_id = settle_with_stripe(payment, intent, core, observed_at=now or datetime.now(UTC))
    return payment.status, enrollment_id
