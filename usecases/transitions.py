"""Apply an event's outcome to a payment along the state machine, whatever the arrival order.

Stripe's ``created`` is in whole seconds, so two events about one intent often tie. When the
table allows a move but the event is not newer than the last one applied, or refuses a move
the event insists on, Stripe's current view of the intent decides. Once paid, a payment is moved
only by its refunds and disputes, to the status they call for together (``settle``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from domain.activation import Claim
from domain.errors import RetryLater
from domain.events import StripeEvent, created_by_us
from domain.payments import (
    PAID,
    Payment,
    can_move,
    due_status,
    intent_can_move,
    intent_sources_of,
    status_of_intent,
)
from usecases.ports import Deps

log = logging.getLogger(__name__)

#: Optimistic-update attempts before giving the message back to the queue.
_ATTEMPTS = 5

IGNORED = "ignored"
PROCESSED = "processed"


def load_payment(event: StripeEvent, deps: Deps) -> Payment | None:
    """The payment an intent event is about; ``None`` for intents this service did not create."""
    payment = deps.payments.by_intent(event.object_id)
    if payment is None and created_by_us(event.object):
        # Ours, but the create-intent write is not visible yet: retry rather than lose it.
        raise RetryLater(f"payment for {event.object_id} not found yet")
    return payment


def payment_of(obj: Mapping[str, Any], deps: Deps) -> Payment | None:
    """The payment a refund, charge or dispute is about: by its ``payment_intent``, else by its ``charge``."""
    intent, charge = obj.get("payment_intent"), obj.get("charge")
    found = deps.payments.by_intent(intent) if isinstance(intent, str) and intent else None
    if found is None and isinstance(charge, str) and charge:
        found = deps.payments.by_charge(charge)
    return found


def moved_at_once(
    event: StripeEvent, target: str, deps: Deps, claim: Claim | None = None, charge_id: str | None = None
) -> Payment | None:
    """The common case in one write: the event's payment moved to ``target``, or None to go step by step.

    It moves only when ``advance`` would move at once without asking anyone: a status the table
    lets reach ``target``, an event newer than the last applied (and, with a ``claim``, a payment
    the intent really pays for). Anything else (no such payment yet, a tie, a refused move) is a
    miss that changed nothing, and the caller loads the payment and decides as before.
    """
    return deps.payments.move_by_intent(
        event.object_id, target, intent_sources_of(target), event.id, event.created_at, claim, charge_id
    )


def follow(event: StripeEvent, target: str, deps: Deps) -> str:
    """Move the event's payment to ``target`` if the rules and the event's age allow it."""
    payment = moved_at_once(event, target, deps) or load_payment(event, deps)
    if payment is None:
        return IGNORED
    advance(event, payment, target, deps)
    return PROCESSED


def advance(event: StripeEvent, payment: Payment, target: str, deps: Deps, charge_id: str | None = None) -> Payment:
    """Apply the event's ``target`` (or Stripe's current state) to ``payment``; return it after.

    A paid payment is never moved by an intent (nor is Stripe asked): only ``settle`` applies to it,
    which also applies a refund or dispute recorded before the payment completed.
    """
    return settle(_advance(event, payment, target, deps, charge_id), deps)


def _advance(event: StripeEvent, payment: Payment, target: str, deps: Deps, charge_id: str | None) -> Payment:
    for _ in range(_ATTEMPTS):
        if payment.status == target:
            # Stripe says what we say already: its time still counts, so that an older event delivered
            # after this one is seen as older (a decline, 3-D Secure, a decline again in one second).
            if payment.last_event_at is None or event.created_at > payment.last_event_at:
                deps.payments.note_event(payment, event.id, event.created_at)
            return payment
        if payment.status in PAID:
            log.info("event about a paid payment", extra={"status": payment.status, "outcome": "stale"})
            return payment
        newer = payment.last_event_at is None or event.created_at > payment.last_event_at
        if not (newer and intent_can_move(payment.status, target)):
            return _settle_with_stripe(event, payment, deps, charge_id)
        moved = deps.payments.move(payment, target, event.id, event.created_at, charge_id)
        if moved is not None:
            log.info("payment moved", extra={"status": target, "outcome": "applied"})
            return moved
        payment = reload(payment, deps)
    raise RetryLater(f"payment for {event.object_id} kept changing under us")


def _settle_with_stripe(event: StripeEvent, payment: Payment, deps: Deps, charge_id: str | None) -> Payment:
    """Ask Stripe where the intent really is and apply that, when the table allows it."""
    for _ in range(_ATTEMPTS):
        actual = status_of_intent(deps.stripe.retrieve_payment_intent(event.object_id))
        if actual == payment.status or not intent_can_move(payment.status, actual):
            log.info("event superseded", extra={"status": payment.status, "outcome": "stale"})
            return payment
        at = max(payment.last_event_at or event.created_at, event.created_at)
        moved = deps.payments.move(payment, actual, event.id, at, charge_id)
        if moved is not None:
            log.info("payment moved to Stripe's state", extra={"status": actual, "outcome": "applied"})
            return moved
        payment = reload(payment, deps)
    raise RetryLater(f"payment for {event.object_id} kept changing under us")


def settle(payment: Payment, deps: Deps, event_id: str | None = None) -> Payment:
    """Move a paid payment to the status its refunds and dispute call for together (``due_status``).

    Every writer of a paid payment's facts (a refund counted, a dispute recorded, the intent's
    completion) calls it after its own write, on the document read after it, and the move is
    conditional on the status, refunds and dispute read: whichever writer comes last sees every
    fact, so any order of them ends the same. Unpaid payments are left to their intent. ``event_id``
    names the event that moved it in its history (a dispute's), if any.
    """
    for _ in range(_ATTEMPTS):
        target = due_status(payment)
        if payment.status not in PAID or payment.status == target or not can_move(payment.status, target):
            return payment
        moved = deps.payments.move(payment, target, event_id, payment.last_event_at)
        if moved is not None:
            log.info("payment follows its refunds and dispute", extra={"status": target, "outcome": "applied"})
            return moved
        payment = reload(payment, deps)
    raise RetryLater(f"payment {payment.intent_id} kept changing under us")


def reload(payment: Payment, deps: Deps) -> Payment:
    fresh = deps.payments.by_intent(payment.intent_id)
    if fresh is None:
        raise RetryLater(f"payment for {payment.intent_id} disappeared")
    return fresh
