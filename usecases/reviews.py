"""The review queue: payments a person must look at (amount or metadata mismatch, duplicate payment).

Each action resolves the flag with one conditional write (so two people cannot both act) and is
audited: ``activate`` (a person decided the customer paid enough: the enrollment is activated
once, as any activation), ``refund`` (in full, through the refunds actor), ``dismiss``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.activation import DUPLICATE_PAYMENT
from domain.errors import RequestRefused
from usecases.activation import activate
from usecases.ops import Audit, Operator
from usecases.ports import Deps
from usecases.refunds import Requester, request_refund
from usecases.transitions import reload

ACTIONS = ("activate", "refund", "dismiss")


def act(intent_id: str, action: str, who: Operator, deps: Deps, audit: Audit, *, now: datetime) -> str | None:
    """Resolve the payment's review with ``action``; returns the enrollment id or refund request id, if any.

    Raises ``RequestRefused``: ``not_found`` for a payment not under review, ``conflict`` for an
    activation of a duplicate payment (the customer is enrolled through another one), and the
    refund's own refusals.
    """
    if action not in ACTIONS:
        raise RequestRefused("validation_error", f"action must be one of {', '.join(ACTIONS)}", "action")
    payment = deps.payments.by_intent(intent_id)
    if payment is None or payment.review is None:
        raise RequestRefused("not_found", "no payment under review with that id")
    if action == "activate" and payment.review == DUPLICATE_PAYMENT:
        raise RequestRefused("conflict", "the customer is already enrolled through another payment; refund it instead")
    outcome = None
    if action == "refund":
        outcome = request_refund(intent_id, Requester(who.name, "admin"), None, "requested_by_customer", deps, now=now,
                                 window=timedelta(0))  # fmt: skip
    if not deps.payments.resolve_review(payment, action, who.name):
        raise RequestRefused("conflict", "someone else resolved this review just now")
    if action == "activate":
        outcome = activate(reload(payment, deps), deps, verified=False, event_id=None)
    audit.record(who, f"review_{action}", {"paymentId": intent_id, "reason": payment.review}, 1)
    return None if outcome is None else str(outcome)
