"""The payment state machine (docs/architecture.md#payment-states) and how Stripe's intent states map onto it."""

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

#: Allowed moves, ``from -> {to}``. Anything not listed is refused; the last two rows are terminal.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({REQUIRES_ACTION, PROCESSING, COMPLETED, FAILED, CANCELED}),
    REQUIRES_ACTION: frozenset({PENDING, PROCESSING, COMPLETED, FAILED, CANCELED}),
    # A failed bank debit returns the intent to requires_payment_method, i.e. pending.
    PROCESSING: frozenset({COMPLETED, FAILED, PENDING}),
    # A failed intent can still be paid.
    FAILED: frozenset({PENDING, REQUIRES_ACTION, PROCESSING, COMPLETED, CANCELED}),
    # Once paid, the status is the one ``paid_status`` works out from refunds and dispute
    # (intent events never move a paid payment: ``intent_can_move``). dispute_lost straight from a
    # paid state: a lost dispute's ``closed`` arriving before its ``created``.
    COMPLETED: frozenset({PARTIALLY_REFUNDED, REFUNDED, DISPUTED, DISPUTE_LOST}),
    PARTIALLY_REFUNDED: frozenset({REFUNDED, DISPUTED, DISPUTE_LOST}),
    # A dispute closing won gives the status its refunds call for, a full refund counted meanwhile included.
    DISPUTED: frozenset({COMPLETED, PARTIALLY_REFUNDED, REFUNDED, DISPUTE_LOST}),
    # A refunded charge can still be disputed (and lost): refunds never take a dispute away.
    REFUNDED: frozenset({DISPUTED, DISPUTE_LOST}),
    CANCELED: frozenset(),
    DISPUTE_LOST: frozenset(),
}

#: Not paid yet: create-intent hands the same intent back for another attempt (docs/api.md#what-the-payment-routes-do).
REUSABLE = frozenset({PENDING, REQUIRES_ACTION, FAILED})

#: Statuses that hold the customer's one open slot for a service, so no second intent is made:
#: the reusable ones, one whose money may be on its way, and one paid but not activated yet
#: (a second intent then could charge the customer twice). Activation, a review flag or any
#: other status gives the slot up (docs/architecture.md#payment-states).
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

#: A dispute's statuses once it is over; after ``lost`` the money went back to the customer.
DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed"})
DISPUTE_LOST_OUTCOME = "lost"


def intent_can_move(current: str, target: str) -> bool:
    """Whether an intent's state (an event, or Stripe asked by confirm-payment or reconcile) may move the payment.

    Never out of a paid status: Stripe's intent stays ``succeeded`` through refunds and disputes,
    so anything an intent says about a paid payment is late, and only refunds and disputes move it.
    """
    return current not in PAID and can_move(current, target)


def intent_sources_of(target: str) -> list[str]:
    """Every status from which an intent's state may move the payment to ``target``."""
    return [status for status in sources_of(target) if status not in PAID]


def paid_status(amount: int, refunded: int, dispute_status: str | None) -> str:
    """The status of a paid payment, from what was refunded and where its dispute stands.

    Refunds and disputes are recorded in any order (an event late, a worker dying before it
    recorded), so the status is worked out from all the facts, never stepped from the last one:
    while a dispute is open it stays ``disputed`` whatever was refunded (refunds still count);
    a lost dispute is ``dispute_lost``; otherwise (no dispute, won, warning_closed) the refunds
    decide: ``refunded`` once all of it went back, ``partially_refunded`` for part, else ``completed``.
    """
    if dispute_status == DISPUTE_LOST_OUTCOME:
        return DISPUTE_LOST
    if dispute_status is not None and dispute_status not in DISPUTE_CLOSED:
        return DISPUTED
    if refunded >= amount:
        return REFUNDED
    return PARTIALLY_REFUNDED if refunded > 0 else COMPLETED


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
    #: Whether what a request held is out of ``refundReserved`` (counted, or given back once it failed).
    released: bool = False
    #: Why it failed (Stripe's reason, or ours), to tell the requester again after a crash.
    failure_reason: str | None = None
    #: A request for the rest of the charge, whatever Stripe took (a review's refund): Stripe is
    #: asked without an amount, and ``amount`` is only what it holds until Stripe's answer.
    whole_charge: bool = False


@dataclass(frozen=True)
class Dispute:
    """The dispute recorded on a payment (its ``dispute`` field)."""

    id: str
    status: str
    event_at: datetime
    #: The payment's paid status when the dispute opened, kept for the record: ``paid_status``
    #: decides the status after it, from what was refunded meanwhile too.
    status_before: str


@dataclass(frozen=True)
class Payment:
    """The fields of a ``payments`` document the rules read (docs/data.md#payments).

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
    #: What Stripe took, where it is not ``amount`` (an intent changed at Stripe: held for review).
    amount_received: int | None = None
    #: Refunds Stripe made (counted once each), and what pending requests of ours hold back.
    amount_refunded: int = 0
    refund_reserved: int = 0
    refunds: tuple[Refund, ...] = ()
    #: The charge of the succeeded intent (refunds and disputes name it).
    charge_id: str | None = None
    dispute: Dispute | None = None

    @property
    def paid_amount(self) -> int:
        """What the customer paid: what Stripe took where that is known to differ from the price."""
        return self.amount if self.amount_received is None else self.amount_received

    def refund(self, *, request_id: str | None = None, stripe_id: str | None = None) -> Refund | None:
        """The ``refunds[]`` entry for our request id or Stripe's ``re_…`` id, if there is one."""
        for entry in self.refunds:
            if (request_id and entry.request_id == request_id) or (stripe_id and entry.stripe_id == stripe_id):
                return entry
        return None


def due_status(payment: Payment) -> str:
    """``paid_status`` of what is recorded on ``payment`` (the status it should have once paid)."""
    dispute = payment.dispute.status if payment.dispute is not None else None
    return paid_status(payment.paid_amount, payment.amount_refunded, dispute)
