"""The rules of activation: does a succeeded intent pay for this payment, and may it activate now?

Pure functions of values; the use case (``usecases.activation``) asks them and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.payments import COMPLETED, PARTIALLY_REFUNDED, Payment, due_status

#: ``reviewRequired.reason`` values (docs/data.md#payments).
AMOUNT_MISMATCH = "amount_mismatch"
METADATA_MISMATCH = "metadata_mismatch"
DUPLICATE_PAYMENT = "duplicate_payment"


@dataclass(frozen=True)
class Mismatch:
    """Why a succeeded intent does not pay for the stored payment: a review reason and details."""

    reason: str
    details: str


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdecimal() and value.isascii() else None


@dataclass(frozen=True)
class Claim:
    """What a succeeded intent says it pays for: the amount and currency received, and the
    payment, customer and service its metadata names (ids as the strings Stripe holds)."""

    amount: int | None
    currency: str
    record_id: str | None
    customer_id: str | None
    service_id: str | None


def claim_of(intent: Mapping[str, Any]) -> Claim:
    """The intent's claim. Payloads of older API versions carry no ``amount_received``; ``amount`` stands in there."""
    metadata = intent.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}

    def named(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) else None

    return Claim(
        amount=_as_int(intent.get("amount_received", intent.get("amount"))),
        currency=str(intent.get("currency", "")).upper(),
        record_id=named("paymentRecordId"),
        customer_id=named("customerId"),
        service_id=named("serviceId"),
    )


def intent_mismatch(payment: Payment, intent: Mapping[str, Any]) -> Mismatch | None:
    """What makes a succeeded ``intent`` not pay for ``payment``, or None when it does."""
    claim = claim_of(intent)
    if claim.amount != payment.amount:
        return Mismatch(AMOUNT_MISMATCH, f"received {claim.amount} but the payment is for {payment.amount}")
    if claim.currency != payment.currency:
        return Mismatch(AMOUNT_MISMATCH, f"currency {intent.get('currency')} but the payment is in {payment.currency}")
    named = {
        "paymentRecordId": (claim.record_id, payment.record_id),
        "customerId": (claim.customer_id, payment.customer.id),
        "serviceId": (claim.service_id, payment.service_id),
    }
    wrong = sorted(key for key, (claimed, stored) in named.items() if claimed != str(stored))
    if wrong:
        return Mismatch(METADATA_MISMATCH, f"metadata {', '.join(wrong)} do not match the payment")
    return None


#: The statuses from which a paid payment may still activate its enrollment.
ACTIVATABLE = frozenset({COMPLETED, PARTIALLY_REFUNDED})


def may_activate(payment: Payment) -> bool:
    """True when ``payment`` may activate its enrollment now: paid, not yet activated, not held for review.

    Only while what is recorded leaves the customer something paid for (``completed``, or part of
    it refunded) and no dispute open or lost: a payment refunded in full, disputed or lost never
    (re)activates, whatever event or call arrives late. A partial refund counted before the
    activation does not stop it, so the enrollment ends the same whichever came first.
    """
    return (
        payment.status in ACTIVATABLE
        and due_status(payment) in ACTIVATABLE
        and payment.activated_at is None
        and payment.review is None
    )
