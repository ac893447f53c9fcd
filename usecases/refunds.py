"""Refunds: asked once, carried out once, recorded once, whoever sees Stripe's refund first.

- ``request_refund`` (the API): the rules decide the amount; one conditional update records the
  request and holds its amount, so two requests can never together exceed what is left; then the
  refunds actor is asked to carry it out.
- ``execute_refund`` (the refunds actor): one conditional write claims the request for this run
  (two runs of one request never both call Stripe: the other retries later and finds it done).
  Stripe forgets idempotency keys after 24 hours, so it first lists the intent's refunds and
  adopts its own earlier one (``metadata.refundRequestId``); only then does it create the
  refund, keyed ``refund:{request id}``. A refusal is recorded with Stripe's reason, the amount
  released, and the requester told.
- ``record_refund`` (the actor and every refund event): links or adds the Stripe refund on the
  payment, counts a succeeded one once, moves the payment to ``partially_refunded``/``refunded``,
  cancels the enrollment this payment activated after a full refund, and re-asserts the two
  emails of that refund (keyed by its ``re_…`` id, so they go out once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from domain.errors import PermanentError, ProviderRefused, RequestRefused, RetryLater
from domain.events import check_refund
from domain.payments import REFUNDED, Payment, Refund, can_move
from domain.refunds import (
    NOT_REFUNDED,
    PENDING,
    REFUNDABLE,
    SUCCEEDED,
    check_reason,
    refund_amount,
    remainder,
    status_after_refunds,
    stripe_reason,
)
from usecases import notices
from usecases.ports import Deps
from usecases.transitions import reload

log = logging.getLogger(__name__)

_ATTEMPTS = 5


@dataclass(frozen=True)
class Requester:
    """Who asks for a refund: their user id and role (``customer``, ``specialist``, ``admin``)."""

    id: Any
    role: str

    def may_refund(self, payment: Payment) -> bool:
        if self.role == "admin":
            return True
        mine = payment.customer.id if self.role == "customer" else payment.specialist.id
        return self.role in ("customer", "specialist") and mine == self.id

    def email(self, payment: Payment, deps: Deps) -> str | None:
        return {"customer": payment.customer.email, "specialist": payment.specialist.email}.get(
            self.role, deps.links.ops_email
        )


def request_refund(
    intent_id: str, who: Requester, amount: int | None, reason: str | None, deps: Deps, *, now: datetime,
    window: timedelta,
) -> str:  # fmt: skip
    """Record a refund request and hand it to the refunds actor; returns its id.

    Raises ``RequestRefused``: ``not_found`` for a payment the caller may not refund (existence
    is not told), ``not_refundable`` for more than is left, a payment not paid or under dispute,
    or a customer past the refund window; ``validation_error`` for a reason the requester may not give.
    """
    check_reason(reason, customer=who.role == "customer")
    for _ in range(_ATTEMPTS):
        payment = deps.payments.by_intent(intent_id)
        if payment is None or not who.may_refund(payment):
            raise RequestRefused("not_found", "payment not found")
        refund = refund_amount(payment, amount, customer=who.role == "customer", now=now, window=window)
        request_id = uuid4().hex
        note = reason if stripe_reason(reason) is None else None
        by = {"id": who.id, "role": who.role, "email": who.email(payment, deps)}
        if deps.refunds.reserve(payment, request_id, refund, stripe_reason(reason), note, by):
            log.info("refund requested", extra={"payment_id": intent_id, "outcome": "requested"})
            try:
                deps.jobs.enqueue_refund(intent_id, request_id)
            except Exception as error:  # recorded: the stale-work sweep sends it on
                log.warning("refund request recorded, not queued yet", extra={"error": repr(error)})
            return request_id
    raise RequestRefused("conflict", "the payment's refunds kept changing; retry")


def refund_duplicate(payment: Payment, deps: Deps) -> None:
    """Refund in full, once, a second payment for an enrollment another payment already paid for.

    The request id is derived from the payment, so a retry finds its own request instead of
    making another; it is queued on every call, which heals a crash between the two steps.
    """
    request_id = f"duplicate-{payment.record_id}"
    for _ in range(_ATTEMPTS):
        if payment.refund(request_id=request_id) is not None:
            break
        amount = remainder(payment)
        if payment.status not in REFUNDABLE or amount <= 0:
            return
        system = {"id": None, "role": "system", "email": deps.links.ops_email}
        if deps.refunds.reserve(payment, request_id, amount, "duplicate", None, system):
            log.warning("duplicate payment refunded in full", extra={"outcome": "duplicate_refund"})
            break
        payment = reload(payment, deps)
    deps.jobs.enqueue_refund(payment.intent_id, request_id)


def execute_refund(intent_id: str, request_id: str, deps: Deps, holder: str | None = None) -> None:
    """Carry out one recorded refund request at most once, whatever was done before a crash.

    ``holder`` names this run (the queue message's id): its redelivery takes back its own claim.
    """
    payment = deps.payments.by_intent(intent_id)
    entry = payment.refund(request_id=request_id) if payment else None
    if payment is None or entry is None:
        raise PermanentError(f"no refund request {request_id} on payment {intent_id}")
    if entry.status != PENDING or entry.stripe_id is not None:
        log.info("refund request already carried out", extra={"outcome": "duplicate", "status": entry.status})
        return
    if not deps.refunds.claim(payment, request_id, holder):
        entry = reload(payment, deps).refund(request_id=request_id)
        if entry is not None and (entry.status != PENDING or entry.stripe_id is not None):
            return  # the other run finished between our read and our claim
        raise RetryLater(f"refund request {request_id} is being carried out by another run")
    refund = _own_refund(deps, intent_id, request_id)
    if refund is None:
        metadata = {"refundRequestId": request_id, "paymentRecordId": str(payment.record_id)}
        try:
            refund = deps.stripe.create_refund(
                intent_id, entry.amount, stripe_reason(entry.reason), metadata, idempotency_key=f"refund:{request_id}"
            )
        except ProviderRefused as error:
            _refused(payment, entry, str(error), deps)
            return
    record_refund(payment, refund, deps)


def _own_refund(deps: Deps, intent_id: str, request_id: str) -> Mapping[str, Any] | None:
    """This request's refund if Stripe already made it (a crash after the call, a replay days later)."""
    for refund in deps.stripe.list_refunds(intent_id):
        if (refund.get("metadata") or {}).get("refundRequestId") == request_id:
            return refund
    return None


def _refused(payment: Payment, entry: Refund, reason: str, deps: Deps) -> None:
    log.warning("refund refused by Stripe", extra={"outcome": "refused", "error": reason})
    deps.refunds.fail(payment, entry, reason)
    if entry.request_id:
        notices.refund_refused(payment, entry.request_id, entry.amount, entry.requester_email, reason, deps)


def record_refund(payment: Payment, refund: Mapping[str, Any], deps: Deps) -> None:
    """Bring the payment to what Stripe says of one of its refunds (idempotent, any order).

    A refund from the API (``charge.refunded``, the refunds actor) is checked as an event's is.
    """
    check_refund(refund, "refund")
    stripe_id, status = str(refund["id"]), str(refund.get("status"))
    request_id = (refund.get("metadata") or {}).get("refundRequestId")
    entry = payment.refund(stripe_id=stripe_id) or payment.refund(request_id=request_id)
    if entry is None:  # made in Stripe's dashboard, or by a request of another system
        deps.refunds.add(payment, stripe_id, int(refund["amount"]), status, refund.get("reason"))
    elif entry.stripe_id is None and entry.request_id:
        deps.refunds.link(payment, entry.request_id, stripe_id, status)
    payment = reload(payment, deps)
    entry = payment.refund(stripe_id=stripe_id)
    if entry is None:
        raise RetryLater(f"refund {stripe_id} not visible on its payment yet")
    if status == SUCCEEDED:
        reserved = entry.amount if entry.request_id else 0
        if deps.refunds.count(payment, stripe_id, int(refund["amount"]), reserved):
            log.info("refund recorded", extra={"outcome": "refunded"})
        payment = _settle_status(reload(payment, deps), deps)
        notices.refunded(payment, stripe_id, int(refund["amount"]), deps)
        if payment.status == REFUNDED:
            deps.enrollments.cancel(payment, REFUNDED)
    elif status in NOT_REFUNDED:
        reason = str(refund.get("failure_reason") or status)
        if entry.status != status and deps.refunds.fail(payment, entry, reason) and entry.request_id:
            notices.refund_refused(payment, entry.request_id, entry.amount, entry.requester_email, reason, deps)
    else:
        deps.refunds.set_status(payment, stripe_id, status)


def _settle_status(payment: Payment, deps: Deps) -> Payment:
    """Move the payment to the status its counted refunds call for, if the state machine allows it."""
    for _ in range(_ATTEMPTS):
        target = status_after_refunds(payment.amount, payment.amount_refunded)
        if target is None or target == payment.status or not can_move(payment.status, target):
            return payment
        if deps.payments.move(payment, target, None, payment.last_event_at):
            return reload(payment, deps)
        payment = reload(payment, deps)
    raise RetryLater(f"payment {payment.intent_id} kept changing under us")
