"""The emails a payment's story sends, each written to the outbox under one dedupe key.

Every call re-asserts its notification, so a retry after a crash between a state change and the
outbox write heals it, and no key is ever emailed twice (docs/data.md#notifications-the-outbox).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain import notices
from domain.money import display
from domain.payments import Payment, Refund
from usecases.ports import Deps, Notice, Payments


def no_longer_true(template: str, context: Mapping[str, str], payments: Payments) -> str | None:
    """Why a queued email must not be sent any more (its payment moved on), or None to send it."""
    if not notices.watches_payment(template):
        return None
    payment = payments.by_intent(str(context.get("payment_id", "")))
    if payment is not None and notices.obsolete(template, payment.status):
        return f"no longer true: the payment is {payment.status} now"
    return None


def notice(payment: Payment, template: str, to: str | None, occasion: str, **context: str) -> Notice | None:
    """One ``template`` email to ``to`` about ``payment`` per occasion (its dedupe key); None without a recipient."""
    return Notice(f"{payment.record_id}:{template}:{occasion}", template, to, context) if to else None


def tell(deps: Deps, *notices: Notice | None) -> None:
    """Ensure these emails, all in one outbox write (nothing at all when none has a recipient)."""
    wanted = [n for n in notices if n is not None]
    if wanted:
        deps.outbox.notify_all(wanted)


def review_required(payment: Payment, reason: str, details: str, event_id: str | None, deps: Deps) -> None:
    """Tell ops that a person must look at the payment (once per payment and reason)."""
    tell(
        deps,
        notice(
            payment,
            "ops_review_required",
            deps.links.ops_email,
            occasion=reason,
            reason=reason,
            payment_id=payment.intent_id,
            event_id=event_id or "-",
            details=details,
        ),
    )


def enrolled(payment: Payment, deps: Deps) -> None:
    """Welcome the customer and tell the specialist (once per payment and recipient), in one outbox write."""
    base = deps.links.app_base_url.rstrip("/")
    amount = display(payment.amount, payment.currency)
    customer, specialist = payment.customer, payment.specialist
    welcome = notice(
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
    news = notice(
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
    tell(deps, welcome, news)


def payment_failed(payment: Payment, event_id: str, reason: str, deps: Deps) -> None:
    """Tell the customer a payment attempt failed (once per failure event)."""
    tell(
        deps,
        notice(
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
        ),
    )


def refunded(payment: Payment, refund_id: str, amount: int, deps: Deps) -> None:
    """Tell the customer and the specialist about one refund (once per refund, whoever records it first)."""
    left = payment.amount - payment.amount_refunded
    remaining = (
        f"{display(left, payment.currency)} of the payment stays paid."
        if left > 0
        else "The payment is fully refunded."
    )
    common = {
        "service_name": payment.service_name,
        "amount_display": display(payment.amount, payment.currency),
        "refund_display": display(amount, payment.currency),
        "remaining_note": remaining,
        "refund_id": refund_id,
        "payment_id": payment.intent_id,
    }
    customer, specialist = payment.customer, payment.specialist
    confirmation = notice(
        payment,
        "refund_confirmation",
        customer.email,
        refund_id,
        customer_name=customer.name or "there",
        **common,
    )
    news = notice(
        payment,
        "refund_notice",
        specialist.email,
        refund_id,
        specialist_name=specialist.name or "there",
        customer_name=customer.name or "A customer",
        dashboard_url=f"{deps.links.app_base_url.rstrip('/')}/specialist/dashboard",
        **common,
    )
    tell(deps, confirmation, news)


def refund_refused(payment: Payment, request_id: str, amount: int, to: str | None, reason: str, deps: Deps) -> None:
    """Tell whoever asked for a refund that Stripe refused it (once per request)."""
    tell(
        deps,
        notice(
            payment,
            "refund_refused",
            to,
            request_id,
            service_name=payment.service_name,
            refund_display=display(amount, payment.currency),
            reason=reason,
            payment_id=payment.intent_id,
        ),
    )


def refund_abandoned(payment: Payment, entry: Refund, deps: Deps) -> None:
    """Tell ops a refund request was given up (no run could carry it out), once per request."""
    tell(
        deps,
        notice(
            payment,
            "ops_refund_failed",
            deps.links.ops_email,
            str(entry.request_id),
            payment_id=payment.intent_id,
            request_id=str(entry.request_id),
            refund_display=display(entry.amount, payment.currency),
            requested_by=entry.requester_email or "-",
            reason=entry.failure_reason or "-",
        ),
    )


def _dispute_context(payment: Payment, dispute: Mapping[str, Any]) -> dict[str, str]:
    amount = dispute.get("amount")
    return {
        "service_name": payment.service_name,
        "customer_name": payment.customer.name or "A customer",
        "dispute_amount": display(amount if isinstance(amount, int) else payment.amount, payment.currency),
        "dispute_reason": str(dispute.get("reason") or "unspecified"),
        "dispute_id": str(dispute.get("id")),
        "payment_id": payment.intent_id,
    }


def dispute_opened(payment: Payment, dispute: Mapping[str, Any], deps: Deps) -> None:
    """Tell the specialist and ops a payment is disputed, with the evidence deadline (once per dispute)."""
    details = dispute.get("evidence_details")
    due = details.get("due_by") if isinstance(details, Mapping) else None
    context = {
        **_dispute_context(payment, dispute),
        "due_by": datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%d %H:%M UTC") if isinstance(due, int) else "-",
    }
    occasion = f"{dispute.get('id')}:opened"
    tell(
        deps,
        notice(payment, "dispute_opened", payment.specialist.email, f"{occasion}:specialist", **context),
        notice(payment, "dispute_opened", deps.links.ops_email, f"{occasion}:ops", **context),
    )


def dispute_closed(payment: Payment, dispute: Mapping[str, Any], deps: Deps) -> None:
    """Tell the specialist how a dispute ended (once per dispute)."""
    outcome = {"won": "won", "warning_closed": "closed without a chargeback", "lost": "lost"}
    context = {**_dispute_context(payment, dispute), "outcome": outcome.get(str(dispute.get("status")), "closed")}
    tell(deps, notice(payment, "dispute_closed", payment.specialist.email, f"{dispute.get('id')}:closed", **context))
