"""Refunds: asked once, carried out once, recorded once, whoever sees Stripe's refund first.

- ``request_refund`` (the API): the rules decide the amount; one conditional update records the
  request and holds its amount, so two requests can never together exceed what is left; then the
  refunds actor is asked to carry it out.
- ``execute_refund`` (the refunds actor): one conditional write claims the request for this run
  (two runs of one request never both call Stripe: the other retries later and finds it done).
  Stripe forgets idempotency keys after 24 hours, so it first lists the intent's refunds and
  adopts its own earlier one (``metadata.refundRequestId``); only then does it create the
  refund, keyed ``refund:{request id}``. A refusal is recorded with Stripe's reason, the amount
  released, and the requester told. A request found carried out already is finished again
  (``finish``): a crash right after the money moved never skips what follows it.
- ``record_refund`` (the actor and every refund event): links or adds the Stripe refund on the
  payment, counts a succeeded one once, moves the payment to ``partially_refunded``/``refunded``,
  cancels the enrollment this payment activated after a full refund, and re-asserts the two
  emails of that refund (keyed by its ``re_…`` id, so they go out once). A failed refund is
  final, whatever Stripe reports about it later; what its request held is given back once.
- ``retry_stale_request`` and ``finish_refund`` (the stale-work sweep): a request left pending is
  queued again a bounded number of times, then failed, its hold given back, ops and the requester
  told; an outcome whose follow-ups were never done is finished.
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
from domain.payments import REFUNDED, Payment, Refund
from domain.refunds import (
    ABANDONED,
    FAILED,
    NOT_REFUNDED,
    PENDING,
    REFUNDABLE,
    SUCCEEDED,
    abandoned,
    check_reason,
    holds_reservation,
    refund_amount,
    remainder,
    reported,
    stripe_reason,
)
from usecases import notices
from usecases.ports import Deps
from usecases.transitions import reload, settle

log = logging.getLogger(__name__)

_ATTEMPTS = 5

#: What the stale-work sweep did with one stale request (``retry_stale_request``).
REQUEUED = "requeued"
GAVE_UP = "gave_up"
RECORDED = "recorded"
SKIPPED = "skipped"


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

    ``holder`` names this run (``adapters.dead_workers.claim_holder``): its claim on the request.
    """
    payment = deps.payments.by_intent(intent_id)
    entry = payment.refund(request_id=request_id) if payment else None
    if payment is None or entry is None:
        raise PermanentError(f"no refund request {request_id} on payment {intent_id}")
    if entry.status != PENDING or entry.stripe_id is not None:
        log.info("refund request already carried out", extra={"outcome": "duplicate", "status": entry.status})
        _carried_out(payment, entry, deps)  # a crash may have come right after the money moved
        return
    if not deps.refunds.claim(payment, request_id, holder):
        payment = reload(payment, deps)
        entry = payment.refund(request_id=request_id)
        if entry is not None and (entry.status != PENDING or entry.stripe_id is not None):
            _carried_out(payment, entry, deps)  # the other run finished between our read and our claim
            return
        raise RetryLater(f"refund request {request_id} is being carried out by another run")
    refund = _own_refund(deps, intent_id, request_id)
    if refund is None:
        metadata = {"refundRequestId": request_id, "paymentRecordId": str(payment.record_id)}
        try:
            amount = None if entry.whole_charge else entry.amount  # the charge's rest: what Stripe took, less refunds
            refund = deps.stripe.create_refund(
                intent_id, amount, stripe_reason(entry.reason), metadata, idempotency_key=f"refund:{request_id}"
            )
        except ProviderRefused as error:
            # A call retried after its first attempt made the refund is refused for that refund.
            refund = _own_refund(deps, intent_id, request_id)
            if refund is None:
                log.warning("refund refused by Stripe", extra={"outcome": "refused", "error": str(error)})
                _fail(payment, entry, str(error), deps)
                return
    record_refund(payment, refund, deps)


def _carried_out(payment: Payment, entry: Refund, deps: Deps) -> None:
    """Finish a request whose outcome is recorded; one linked but not settled is asked of Stripe again."""
    if entry.counted or entry.status == FAILED:
        finish(payment, entry, deps)
    elif entry.stripe_id is not None and entry.request_id:
        refund = _own_refund(deps, payment.intent_id, entry.request_id)
        if refund is not None:
            record_refund(payment, refund, deps)


def _own_refund(deps: Deps, intent_id: str, request_id: str) -> Mapping[str, Any] | None:
    """This request's refund if Stripe already made it (a crash after the call, a replay days later)."""
    for refund in deps.stripe.list_refunds(intent_id):
        if (refund.get("metadata") or {}).get("refundRequestId") == request_id:
            return refund
    return None


def _fail(payment: Payment, entry: Refund, reason: str, deps: Deps) -> None:
    """Record a refund's failure (final; its hold given back once), then what follows it."""
    if deps.refunds.fail(payment, entry, reason):
        log.info("refund failed", extra={"outcome": "failed", "error": reason})
    payment = reload(payment, deps)
    after = payment.refund(request_id=entry.request_id, stripe_id=entry.stripe_id)
    if after is not None:
        finish(payment, after, deps)


def finish(payment: Payment, entry: Refund, deps: Deps) -> None:
    """Do, again if need be, everything that follows one refund's recorded outcome; each step is idempotent.

    Counted: the payment moves to what its refunds call for, customer and specialist are emailed
    (keyed by the ``re_…`` id) and a full refund cancels the enrollment this payment activated.
    Failed: a hold still there is given back, the requester told (keyed by the request) and ops
    told of a request given up on. Then the entry is marked finished, so the sweep leaves it.
    """
    if entry.counted and entry.stripe_id is not None:
        payment = settle(payment, deps)  # stays disputed while a dispute is open
        notices.refunded(payment, entry.stripe_id, entry.amount, deps)
        if payment.status == REFUNDED:
            deps.enrollments.cancel(payment, REFUNDED)
    elif entry.status == FAILED:
        reason = entry.failure_reason or "the refund failed"
        if holds_reservation(entry) and deps.refunds.fail(payment, entry, reason):
            log.info("refund failed", extra={"outcome": "failed", "error": reason})
        settle(reload(payment, deps), deps)  # a refund counted before it failed no longer counts
        if abandoned(entry):
            notices.refund_abandoned(payment, entry, deps)
        if entry.request_id:
            notices.refund_refused(payment, entry.request_id, entry.amount, entry.requester_email, reason, deps)
    else:
        return
    deps.refunds.finished(payment, entry)


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
    outcome = reported(entry.status, status)
    if status in NOT_REFUNDED:
        _fail(payment, entry, str(refund.get("failure_reason") or status), deps)
    elif outcome == FAILED:
        log.info("a failed refund stays failed", extra={"outcome": "ignored", "status": status})
        finish(payment, entry, deps)
    elif outcome == SUCCEEDED:
        reserved = entry.amount if entry.request_id else 0
        if deps.refunds.count(payment, stripe_id, int(refund["amount"]), reserved):
            log.info("refund recorded", extra={"outcome": "refunded"})
        payment = reload(payment, deps)
        after = payment.refund(stripe_id=stripe_id)
        if after is not None:
            finish(payment, after, deps)  # counted, or failed meanwhile: what follows either
    else:
        deps.refunds.set_status(payment, stripe_id, outcome)


def retry_stale_request(
    intent_id: str, request_id: str, deps: Deps, *, older_than: timedelta, max_requeues: int
) -> str:
    """Queue a request left pending again, at most ``max_requeues`` times; then give it up.

    One worker requeues it once per ``older_than`` however many sweep. Giving up asks Stripe
    first (a refund it made for the request is recorded, never failed); otherwise the request is
    failed, its hold given back, and ops and the requester are told. Returns what was done.
    """
    requeues = deps.refunds.note_requeue(intent_id, request_id, older_than)
    if requeues is None:
        return SKIPPED
    if requeues <= max_requeues:
        deps.jobs.enqueue_refund(intent_id, request_id)
        return REQUEUED
    payment = deps.payments.by_intent(intent_id)
    entry = payment.refund(request_id=request_id) if payment else None
    if payment is None or entry is None or entry.status != PENDING or entry.stripe_id is not None:
        return SKIPPED
    refund = _own_refund(deps, intent_id, request_id)
    if refund is not None:
        record_refund(payment, refund, deps)
        return RECORDED
    if not deps.refunds.abandon(payment, entry, ABANDONED):
        return SKIPPED  # a run holds it now, or it moved on
    log.error(
        "refund request given up after %d requeues", max_requeues, extra={"payment_id": intent_id, "outcome": "failed"}
    )
    payment = reload(payment, deps)
    after = payment.refund(request_id=request_id)
    if after is not None:
        finish(payment, after, deps)
    return GAVE_UP


def finish_refund(intent_id: str, request_id: str | None, stripe_id: str | None, deps: Deps) -> bool:
    """Finish one refund outcome whose follow-ups were left undone (the sweep); True if it was there."""
    payment = deps.payments.by_intent(intent_id)
    entry = payment.refund(request_id=request_id, stripe_id=stripe_id) if payment else None
    if payment is None or entry is None:
        return False
    finish(payment, entry, deps)
    return True
