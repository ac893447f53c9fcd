"""Enrollment activation after a successful payment, shared by the webhook and confirm-payment.

Every step is idempotent and runs again on every attempt: the enrollment update is conditional,
the links are plain sets, and notifications are keyed by payment, so a crash anywhere is healed
by the retry and nobody is enrolled, or emailed, twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from domain.money import display
from domain.payments import COMPLETED, Payment, can_move
from domain.ports import DUPLICATE, Deps
from domain.transitions import reload

log = logging.getLogger(__name__)

AMOUNT_MISMATCH = "amount_mismatch"
DUPLICATE_PAYMENT = "duplicate_payment"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def intent_problem(payment: Payment, intent: Mapping[str, Any]) -> str | None:
    """Why a succeeded intent does not pay for ``payment``, or None when it does.

    Payloads of older API versions carry no ``amount_received``; ``amount`` stands in there.
    """
    received = _as_int(intent.get("amount_received", intent.get("amount")))
    if received != payment.amount:
        return f"received {received} but the payment is for {payment.amount}"
    if str(intent.get("currency", "")).upper() != payment.currency:
        return f"currency {intent.get('currency')} but the payment is in {payment.currency}"
    metadata = intent.get("metadata") or {}
    expected = {
        "paymentRecordId": str(payment.record_id),
        "customerId": str(payment.customer.id),
        "serviceId": str(payment.service_id),
    }
    wrong = sorted(k for k, v in expected.items() if metadata.get(k) != v)
    return f"metadata {', '.join(wrong)} do not match the payment" if wrong else None


def review(payment: Payment, reason: str, details: str, event_id: str | None, deps: Deps) -> None:
    """Flag the payment for a person and tell ops (once per payment and reason)."""
    log.warning("payment needs review", extra={"outcome": reason, "error": details})
    deps.payments.flag_review(payment, reason, event_id)
    _tell(
        deps,
        payment,
        "ops_review_required",
        deps.links.ops_email,
        occasion=reason,
        reason=reason,
        payment_id=payment.intent_id,
        event_id=event_id or "-",
        details=details,
    )


def _tell(deps: Deps, payment: Payment, template: str, to: str | None, occasion: str, **context: str) -> None:
    """Ensure one ``template`` email to ``to`` about ``payment`` per occasion (its dedupe key)."""
    if to:
        deps.outbox.notify(f"{payment.record_id}:{template}:{occasion}", template, to, context)


def complete_without_event(payment: Payment, deps: Deps) -> Payment:
    """Mark the payment completed on Stripe's word outside a webhook (confirm-payment)."""
    for _ in range(5):
        if payment.status == COMPLETED or not can_move(payment.status, COMPLETED):
            return payment
        if deps.payments.move(payment, COMPLETED, None, payment.last_event_at):
            return reload(payment, deps)
        payment = reload(payment, deps)
    return payment


def activate(payment: Payment, deps: Deps, *, verified: bool, event_id: str | None) -> Any:
    """Enroll the customer for a paid ``payment`` and tell both sides; return the enrollment id.

    A second successful payment for an enrollment that is already active is never a second
    activation: it is flagged ``duplicate_payment`` for review and returns None.
    """
    outcome, enrollment_id = deps.enrollments.activate(payment, verified)
    if outcome == DUPLICATE:
        review(payment, DUPLICATE_PAYMENT, "the customer is already enrolled through another payment", event_id, deps)
        return None
    deps.payments.link_enrollment(payment, enrollment_id)
    log.info("enrollment active", extra={"outcome": outcome})
    _notify_enrolled(payment, deps)
    return enrollment_id


def _notify_enrolled(payment: Payment, deps: Deps) -> None:
    base = deps.links.app_base_url.rstrip("/")
    amount = display(payment.amount, payment.currency)
    customer, specialist = payment.customer, payment.specialist
    _tell(
        deps,
        payment,
        "enrollment_confirmation",
        customer.email,
        occasion=str(customer.email),
        customer_name=customer.name or "there",
        service_name=payment.service_name,
        service_type=payment.service_type,
        amount_display=amount,
        payment_id=payment.intent_id,
        enrollment_url=f"{base}/services/{payment.service_id}",
    )
    _tell(
        deps,
        payment,
        "specialist_new_enrollment",
        specialist.email,
        occasion=str(specialist.email),
        specialist_name=specialist.name or "there",
        customer_name=customer.name or "A customer",
        service_name=payment.service_name,
        amount_display=amount,
        payment_id=payment.intent_id,
        dashboard_url=f"{base}/specialist/dashboard",
    )


def notify_failed(payment: Payment, event_id: str, reason: str, deps: Deps) -> None:
    """Tell the customer a payment attempt failed (once per failure event)."""
    _tell(
        deps,
        payment,
        "payment_failed",
        payment.customer.email,
        occasion=event_id,
        customer_name=payment.customer.name or "there",
        service_name=payment.service_name,
        amount_display=display(payment.amount, payment.currency),
        reason=reason,
        retry_url=f"{deps.links.app_base_url.rstrip('/')}/services/{payment.service_id}",
        payment_id=payment.intent_id,
    )
