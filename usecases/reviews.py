"""The review queue: payments a person must look at (amount or metadata mismatch, duplicate payment).

Resolve first, then act: the flag is resolved by one conditional write (``reviewRequired`` still
set, so not resolved yet: it becomes ``reviewResolved`` with who, what and when), and only the
person whose write won acts; the other gets ``conflict`` and nothing happens. ``activate`` (a
person decided the customer paid enough: the enrollment is activated once, as any activation;
a crash after the resolve is healed by the stale-work sweep), ``refund`` (the rest of the
charge, whatever Stripe took, through the refunds actor: its request is recorded in the very
write that resolves, so no refund goes ahead for a review someone else resolved, and none is
lost to a crash), ``dismiss`` (never activated afterwards, not even by the sweep). Audited.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from domain.activation import DUPLICATE_PAYMENT
from domain.errors import RequestRefused
from domain.refunds import refund_amount
from usecases.activation import activate
from usecases.ports import Audit, Deps, Operator
from usecases.transitions import reload

log = logging.getLogger(__name__)

ACTIONS = ("activate", "refund", "dismiss")

#: Attempts at the refund's write while the payment's refunds change under it.
_ATTEMPTS = 5
_LOST = "someone else resolved this review just now"


def act(intent_id: str, action: str, who: Operator, deps: Deps, audit: Audit, *, now: datetime) -> str | None:
    """Resolve the payment's review with ``action``; returns the enrollment id or refund request id, if any.

    Raises ``RequestRefused``: ``not_found`` for a payment not under review, ``conflict`` for an
    activation of a duplicate payment (the customer is enrolled through another one) and for a
    review someone else resolved first, and the refund's own refusals (``not_refundable``).
    """
    if action not in ACTIONS:
        raise RequestRefused("validation_error", f"action must be one of {', '.join(ACTIONS)}", "action")
    payment = deps.payments.by_intent(intent_id)
    if payment is None or payment.review is None:
        raise RequestRefused("not_found", "no payment under review with that id")
    reason = payment.review
    if action == "activate" and reason == DUPLICATE_PAYMENT:
        raise RequestRefused("conflict", "the customer is already enrolled through another payment; refund it instead")
    outcome = None
    if action == "refund":
        outcome = _refund(intent_id, who, deps, now=now)
    elif not deps.payments.resolve_review(payment, action, who.name):
        raise RequestRefused("conflict", _LOST)
    elif action == "activate":
        outcome = activate(reload(payment, deps), deps, verified=False, event_id=None)
    audit.record(who, f"review_{action}", {"paymentId": intent_id, "reason": reason}, 1)
    return None if outcome is None else str(outcome)


def _refund(intent_id: str, who: Operator, deps: Deps, *, now: datetime) -> str:
    """Record a request for the rest of the charge in the write that resolves the review, then queue it.

    Stripe is asked without an amount, so it refunds what it took (an overpayment's extra too);
    what the request holds meanwhile is what is left of the stored price. The request id is the
    payment's own: there is one review refund per payment.
    """
    request_id = ""
    for _ in range(_ATTEMPTS):
        payment = deps.payments.by_intent(intent_id)
        if payment is None or payment.review is None:
            raise RequestRefused("conflict", _LOST)
        request_id = f"review-{payment.record_id}"
        amount = refund_amount(payment, None, customer=False, now=now, window=timedelta(0))
        resolved = {"reason": payment.review, "action": "refund", "by": who.name, "at": now}
        by = {"id": who.name, "role": "admin", "email": deps.links.ops_email}
        if deps.refunds.reserve(
            payment, request_id, amount, "requested_by_customer", None, by, whole_charge=True, resolving=resolved
        ):
            break
    else:
        raise RequestRefused("conflict", "the payment's refunds kept changing; retry")
    try:
        deps.jobs.enqueue_refund(intent_id, request_id)
    except Exception as error:  # recorded: the stale-work sweep sends it on
        log.warning("review refund recorded, not queued yet", extra={"error": repr(error)})
    return request_id
