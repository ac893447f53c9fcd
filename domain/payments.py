"""The payment state machine (DESIGN §2) and how Stripe's intent states map onto it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PENDING = "pending"
REQUIRES_ACTION = "requires_action"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
DISPUTED = "disputed"
DISPUTE_LOST = "dispute_lost"

#: Allowed moves, ``from -> {to}``. Anything not listed is refused; the last row is terminal.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({REQUIRES_ACTION, PROCESSING, COMPLETED, FAILED, CANCELED}),
    REQUIRES_ACTION: frozenset({PENDING, PROCESSING, COMPLETED, FAILED, CANCELED}),
    # A failed bank debit returns the intent to requires_payment_method, i.e. pending.
    PROCESSING: frozenset({COMPLETED, FAILED, PENDING}),
    # A failed intent can still be paid.
    FAILED: frozenset({PENDING, REQUIRES_ACTION, PROCESSING, COMPLETED, CANCELED}),
    # dispute_lost straight from a paid state: a lost dispute's ``closed`` arriving before its ``created``.
    COMPLETED: frozenset({PARTIALLY_REFUNDED, REFUNDED, DISPUTED, DISPUTE_LOST}),
    PARTIALLY_REFUNDED: frozenset({REFUNDED, DISPUTED, DISPUTE_LOST}),
    DISPUTED: frozenset({COMPLETED, DISPUTE_LOST, PARTIALLY_REFUNDED}),
    CANCELED: frozenset(),
    REFUNDED: frozenset(),
    DISPUTE_LOST: frozenset(),
}

#: Not paid yet: create-intent hands the same intent back for another attempt (CONTRACT §3).
REUSABLE = frozenset({PENDING, REQUIRES_ACTION, FAILED})

#: Statuses that hold the customer's one open slot for a service, so no second intent is made:
#: the reusable ones, one whose money may be on its way, and one paid but not activated yet
#: (a second intent then could charge the customer twice). Activation, a review flag or any
#: other status gives the slot up (DESIGN §2, "Two sets of payments").
HOLDS_SLOT = REUSABLE | {PROCESSING, COMPLETED}


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def sources_of(target: str) -> list[str]:
    """Every status from which ``target`` may be reached (the filter of a conditional update)."""
    return sorted(s for s, targets in TRANSITIONS.items() if target in targets)


def status_of_intent(intent: Mapping[str, Any]) -> str:
    """Our status for a Stripe PaymentIntent as Stripe reports it now."""
    stripe_status = intent.get("status")
    if stripe_status == "succeeded":
        return COMPLETED
    if stripe_status == "processing":
        return PROCESSING
    if stripe_status == "requires_action":
        return REQUIRES_ACTION
    if stripe_status == "canceled":
        return CANCELED
    # requires_payment_method after a decline carries the error; before any attempt it does not.
    if stripe_status == "requires_payment_method" and intent.get("last_payment_error"):
        return FAILED
    return PENDING


#: Statuses after a successful charge: the customer paid, whatever happened since.
PAID = frozenset({COMPLETED, PARTIALLY_REFUNDED, REFUNDED, DISPUTED, DISPUTE_LOST})


def holds_slot(status: str) -> bool:
    """True while a payment in ``status`` keeps the customer from getting a second intent.

    A ``completed`` payment also gives the slot up once activated or flagged; those writes
    clear the slot themselves, since the status alone does not change then.
    """
    return status in HOLDS_SLOT


@dataclass(frozen=True)
class Party:
    """A customer or specialist as the emails need them."""

    id: Any
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Refund:
    """One entry of a payment's ``refunds[]``: a request of ours, a Stripe refund, or both once linked."""

    amount: int
    status: str
    request_id: str | None = None
    stripe_id: str | None = None
    #: Whether ``amount`` is in the payment's ``amountRefunded`` (each refund is counted once).
    counted: bool = False
    #: Stripe's reason, or our free text; who asked (to tell them if Stripe refuses).
    reason: str | None = None
    requester_email: str | None = None


@dataclass(frozen=True)
class Dispute:
    """The dispute recorded on a payment (its ``dispute`` field)."""

    id: str
    status: str
    event_at: datetime
    #: The payment's status before the dispute (``completed`` or ``partially_refunded``).
    status_before: str


@dataclass(frozen=True)
class Payment:
    """The fields of a ``payments`` document the rules read (CONTRACT §5).

    Ids (``record_id``, parties, ``service_id``) are opaque to the rules: adapters store them
    as ObjectIds and compare them as given.
    """

    record_id: Any
    intent_id: str
    status: str
    amount: int
    currency: str
    last_event_at: datetime | None
    customer: Party = Party(None)
    specialist: Party = Party(None)
    service_id: Any = None
    service_type: str = ""
    service_name: str = ""
    enrollment_id: Any = None
    #: When this payment activated its enrollment (set once); None until then.
    activated_at: datetime | None = None
    #: The ``reviewRequired`` reason while a person has to look at the payment.
    review: str | None = None
    #: When the payment first completed (the refund window counts from it).
    paid_at: datetime | None = None
    #: Refunds Stripe made (counted once each), and what pending requests of ours hold back.
    amount_refunded: int = 0
    refund_reserved: int = 0
    refunds: tuple[Refund, ...] = ()
    #: The charge of the succeeded intent (refunds and disputes name it).
    charge_id: str | None = None
    dispute: Dispute | None = None

    def refund(self, *, request_id: str | None = None, stripe_id: str | None = None) -> Refund | None:
        """The ``refunds[]`` entry for our request id or Stripe's ``re_…`` id, if there is one."""
        for entry in self.refunds:
            if (request_id and entry.request_id == request_id) or (stripe_id and entry.stripe_id == stripe_id):
                return entry
        return None
