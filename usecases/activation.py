"""Activation after a successful payment, shared by the webhook and confirm-payment.

Activation is a once-only effect of the payment: the enrollment's conditional update claims it
(it records the payment that activated it), ``activatedAt`` records it on the payment, and every
later call (a retry, confirm-payment, a late event) finds it and only sets ``webhookVerified``.
Every step is idempotent and runs again on every attempt, so a crash anywhere is healed by the
retry and nobody is enrolled, or emailed, twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.activation import DUPLICATE_PAYMENT, claim_of, intent_mismatch, may_activate
from domain.payments import COMPLETED, Payment, intent_can_move, status_of_intent
from usecases import notices
from usecases.ports import DUPLICATE, Deps
from usecases.refunds import refund_duplicate
from usecases.transitions import reload, settle

log = logging.getLogger(__name__)


def review(payment: Payment, reason: str, details: str, event_id: str | None, deps: Deps) -> None:
    """Flag the payment for a person (it gives up the open slot) and tell ops."""
    log.warning("payment needs review", extra={"outcome": reason, "error": details})
    deps.payments.flag_review(payment, reason, event_id)
    notices.review_required(payment, reason, details, event_id, deps)


def check_paid(payment: Payment, intent: Mapping[str, Any], event_id: str | None, deps: Deps) -> bool:
    """Whether a succeeded ``intent`` pays for ``payment``; if not, flag it for a person and remember
    what Stripe took, which is what can be refunded and what counts as refunded in full."""
    mismatch = intent_mismatch(payment, intent)
    if mismatch is None:
        return True
    received = claim_of(intent).amount
    if received is not None:
        deps.payments.note_received(payment, received)
    review(payment, mismatch.reason, mismatch.details, event_id, deps)
    return False


def move_without_event(payment: Payment, target: str, deps: Deps, observed_at: datetime) -> Payment:
    """Move the payment to ``target`` on Stripe's word outside a webhook (confirm-payment, reconcile).

    Recorded as ``lastEventAt`` as an event's time would be (never earlier than the last one), so an
    event about an older state of the intent, arriving later, is seen as older. Like an intent
    event, it never moves a paid payment; a refund or dispute recorded before it completed is applied.
    """
    for _ in range(5):
        if payment.status == target or not intent_can_move(payment.status, target):
            return settle(payment, deps)
        at = max(payment.last_event_at or observed_at, observed_at)
        moved = deps.payments.move(payment, target, None, at)
        if moved is not None:
            return settle(moved, deps)
        payment = reload(payment, deps)
    return payment


def settle_with_stripe(
    payment: Payment, intent: Mapping[str, Any], deps: Deps, *, observed_at: datetime
) -> tuple[Payment, Any]:
    """Bring the payment to the state Stripe reports for its intent (asked at ``observed_at``), outside any webhook.

    A succeeded intent is checked (amount, currency, metadata) and activates the enrollment once,
    not ``webhookVerified``; any other state is followed where the state machine allows. Returns
    the payment after and its enrollment id (None until active).
    """
    target = status_of_intent(intent)
    if target != COMPLETED:
        payment = move_without_event(payment, target, deps, observed_at)
        return payment, payment.enrollment_id
    paid = check_paid(payment, intent, None, deps)
    payment = move_without_event(payment, COMPLETED, deps, observed_at)
    return payment, activate(payment, deps, verified=False, event_id=None) if paid else None


def activate(payment: Payment, deps: Deps, *, verified: bool, event_id: str | None) -> Any:
    """Enroll the customer for a paid ``payment`` once and tell both sides; return the enrollment id.

    A payment that activated before only gets ``webhookVerified`` (when ``verified``) and its
    emails re-asserted: its enrollment's status is never touched again. A payment that may not
    activate (not ``completed``, held for review) returns None. A second successful payment for
    an enrollment another payment made active is flagged ``duplicate_payment``, refunded in full
    (that refund re-asserted by every later call, so a crash between the flag and the refund's
    request is healed by the retry) and returns None.
    """
    if payment.activated_at is not None:
        if verified:
            deps.enrollments.mark_verified(payment)
        notices.enrolled(payment, deps)
        return payment.enrollment_id
    if payment.review == DUPLICATE_PAYMENT:
        # Flagged by an earlier attempt, which may have died before its refund was reserved: the
        # refund is re-asserted (once: its request id is the payment's) on every attempt.
        refund_duplicate(payment, deps)
        return None
    if not may_activate(payment):
        log.info("payment may not activate", extra={"status": payment.status, "outcome": "not_activated"})
        return None
    outcome, enrollment_id = deps.enrollments.activate(payment, verified)
    if outcome == DUPLICATE:
        review(payment, DUPLICATE_PAYMENT, "the customer is already enrolled through another payment", event_id, deps)
        refund_duplicate(payment, deps)
        return None
    deps.payments.record_activation(payment, enrollment_id)
    log.info("enrollment active", extra={"outcome": outcome})
    notices.enrolled(payment, deps)
    return enrollment_id
