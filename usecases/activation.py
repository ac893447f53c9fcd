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
from typing import Any

from domain.activation import DUPLICATE_PAYMENT, intent_mismatch, may_activate
from domain.payments import COMPLETED, Payment, can_move, status_of_intent
from usecases import notices
from usecases.ports import DUPLICATE, Deps
from usecases.refunds import refund_duplicate
from usecases.transitions import reload

log = logging.getLogger(__name__)


def review(payment: Payment, reason: str, details: str, event_id: str | None, deps: Deps) -> None:
    """Flag the payment for a person (it gives up the open slot) and tell ops."""
    log.warning("payment needs review", extra={"outcome": reason, "error": details})
    deps.payments.flag_review(payment, reason, event_id)
    notices.review_required(payment, reason, details, event_id, deps)


def move_without_event(payment: Payment, target: str, deps: Deps) -> Payment:
    """Move the payment to ``target`` on Stripe's word outside a webhook (confirm-payment, reconcile)."""
    for _ in range(5):
        if payment.status == target or not can_move(payment.status, target):
            return payment
        moved = deps.payments.move(payment, target, None, payment.last_event_at)
        if moved is not None:
            return moved
        payment = reload(payment, deps)
    return payment


def settle_with_stripe(payment: Payment, intent: Mapping[str, Any], deps: Deps) -> tuple[Payment, Any]:
    """Bring the payment to the state Stripe reports for its intent, outside any webhook.

    A succeeded intent is checked (amount, currency, metadata) and activates the enrollment once,
    not ``webhookVerified``; any other state is followed where the state machine allows. Returns
    the payment after and its enrollment id (None until active).
    """
    target = status_of_intent(intent)
    if target != COMPLETED:
        payment = move_without_event(payment, target, deps)
        return payment, payment.enrollment_id
    mismatch = intent_mismatch(payment, intent)
    if mismatch:
        review(payment, mismatch.reason, mismatch.details, None, deps)
    payment = move_without_event(payment, COMPLETED, deps)
    return payment, None if mismatch else activate(payment, deps, verified=False, event_id=None)


def activate(payment: Payment, deps: Deps, *, verified: bool, event_id: str | None) -> Any:
    """Enroll the customer for a paid ``payment`` once and tell both sides; return the enrollment id.

    A payment that activated before only gets ``webhookVerified`` (when ``verified``) and its
    emails re-asserted: its enrollment's status is never touched again. A payment that may not
    activate (not ``completed``, held for review) returns None. A second successful payment for
    an enrollment another payment made active is flagged ``duplicate_payment`` and returns None.
    """
    if payment.activated_at is not None:
        if verified:
            deps.enrollments.mark_verified(payment)
        notices.enrolled(payment, deps)
        return payment.enrollment_id
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
