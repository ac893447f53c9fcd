"""One payment's whole story: ours (payment, inbox events, failures, emails, enrollment, audit) and
Stripe's view asked live, one timeline oldest first, and the diagnosis (``domain.diagnosis``).

The ops API, ``payments-ops payment`` and the dashboard's payment page all call ``story``; it
returns plain data (dates as ``datetime``, ids as stored), which each door turns into JSON or HTML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from domain.diagnosis import Facts, RefundFact, StripeFacts, diagnose
from usecases.ports import Doc, StoryReads, StripeReads, StripeUnavailable

#: Rows a search answers at most.
SEARCH_LIMIT = 50
INTENT = re.compile(r"pi_[A-Za-z0-9]{1,250}")
OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
EMAIL = re.compile(r"[^@\s]{1,200}@[^@\s]{1,200}")
#: The fields of a search row.
ROW = ("paymentId", "customerEmail", "serviceName", "amount", "currency", "status", "createdAt")
SUCCEEDED = "payment_intent.succeeded"
NO_INTENT = "this payment has no PaymentIntent yet"


class BadQuery(ValueError):
    """A search text that is none of the keys a payment is found by."""


@dataclass(frozen=True)
class StoryDeps:
    reads: StoryReads
    stripe: StripeReads
    clock: Callable[[], datetime]


def search_kind(text: str) -> tuple[str, str]:
    """Which key ``text`` is: ``intent`` (``pi_…``), ``object_id`` (a payment's or customer's id), ``email``."""
    q = text.strip()
    if INTENT.fullmatch(q):
        return "intent", q
    if OBJECT_ID.fullmatch(q):
        return "object_id", q.lower()
    if EMAIL.fullmatch(q):
        return "email", q
    raise BadQuery("search by a pi_… id, a payment's or customer's 24-hex id, or a customer email")


def search(text: str, reads: StoryReads) -> list[dict[str, Any]]:
    """Up to ``SEARCH_LIMIT`` payments, newest first, as rows of ``ROW``; ``BadQuery`` for anything else."""
    kind, value = search_kind(text)
    return [{name: doc.get(name) for name in ROW} for doc in reads.find_payments(kind, value, SEARCH_LIMIT)]


def is_key(text: str) -> bool:
    """Whether ``text`` can name a payment (a ``pi_…`` id or a 24-hex ``_id``)."""
    return bool(INTENT.fullmatch(text) or OBJECT_ID.fullmatch(text))


def _moment(value: Any) -> datetime | None:
    """A stored date, or Stripe's Unix seconds, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def _stripe_facts(view: Mapping[str, Any]) -> StripeFacts:
    intent = view.get("intent") or {}
    charge = view.get("charge") or {}
    dispute = view.get("dispute") or {}
    due = (dispute.get("evidence_details") or {}).get("due_by")
    return StripeFacts(
        status=str(intent.get("status")),
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        amount_refunded=int(charge.get("amount_refunded") or 0),
        dispute_status=dispute.get("status"),
        dispute_due_by=_moment(due),
        next_action=(intent.get("next_action") or {}).get("type"),
    )


def _paid_at(payment: Doc) -> datetime | None:
    if payment.get("paidAt"):
        return _moment(payment["paidAt"])
    completed = [h.get("at") for h in payment.get("statusHistory") or () if h.get("status") == "completed"]
    return _moment(completed[0]) if completed else None


def _refund(entry: Doc) -> RefundFact:
    stripe_id = entry.get("id") or entry.get("refundRequestId")
    return RefundFact(
        str(stripe_id), int(entry.get("amount") or 0), str(entry.get("status")), entry.get("failureReason")
    )


def facts_of(
    payment: Doc,
    events: Sequence[Doc],
    failures: Sequence[Doc],
    emails: Sequence[Doc],
    enrollment: Doc | None,
    view: Mapping[str, Any] | None,
    stripe_error: str | None,
    now: datetime,
) -> Facts:
    """What the diagnosis rules look at, read off the gathered documents."""
    dead = [f for f in failures if f.get("state") == "dead"]
    covered = {f.get("eventId") for f in dead}
    review, resolved = payment.get("reviewRequired"), payment.get("reviewResolved")
    dispute = payment.get("dispute") or {}
    return Facts(
        intent_id=payment.get("paymentId"),
        status=str(payment.get("status")),
        amount=int(payment.get("amount") or 0),
        currency=str(payment.get("currency") or ""),
        now=now,
        amount_refunded=int(payment.get("amountRefunded") or 0),
        paid_at=_paid_at(payment),
        activated=payment.get("activatedAt") is not None,
        review_reason=review.get("reason") if isinstance(review, Mapping) else None,
        review_resolution=str(resolved.get("action")) if isinstance(resolved, Mapping) else None,
        succeeded_event=any(e.get("type") == SUCCEEDED for e in events),
        failed_events=tuple(str(e["_id"]) for e in events if e.get("status") == "failed" and e["_id"] not in covered),
        dead_failures=tuple(str(f["_id"]) for f in dead),
        refunds=tuple(_refund(r) for r in payment.get("refunds") or ()),
        dispute_status=dispute.get("status"),
        dispute_due_by=_moment(dispute.get("dueBy")),
        enrollment_status=enrollment.get("status") if enrollment else None,
        enrollment_ours=enrollment is not None and enrollment.get("paymentId") == payment.get("_id"),
        failed_emails=tuple(str(n.get("template")) for n in emails if n.get("status") == "failed"),
        stripe=_stripe_facts(view) if view is not None else None,
        stripe_error=stripe_error,
    )


def _entries(
    payment: Doc,
    view: Mapping[str, Any] | None,
    events: Sequence[Doc],
    failures: Sequence[Doc],
    emails: Sequence[Doc],
    enrollment: Doc | None,
    audit: Sequence[Doc],
) -> Iterable[tuple[Any, str, str]]:
    """Every dated thing the story knows, as (when, source, what)."""
    yield payment.get("createdAt"), "payment", f"payment created: {payment.get('amount')} {payment.get('currency')}"
    for step in payment.get("statusHistory") or ():
        by = f" (event {step['eventId']})" if step.get("eventId") else ""
        yield step.get("at"), "payment", f"status {step.get('status')}{by}"
    yield payment.get("activatedAt"), "payment", "enrollment activated"
    review = payment.get("reviewRequired")
    if isinstance(review, Mapping):
        yield review.get("at"), "payment", f"held for review: {review.get('reason')}"
    for refund in payment.get("refunds") or ():
        yield refund.get("createdAt"), "payment", f"refund of {refund.get('amount')} requested ({refund.get('status')})"
    dispute = payment.get("dispute")
    if isinstance(dispute, Mapping):
        yield dispute.get("createdAt"), "payment", f"dispute {dispute.get('status')}: {dispute.get('reason')}"
    if view is not None:
        intent = view.get("intent") or {}
        yield intent.get("created"), "stripe", f"intent created; now {intent.get('status')}"
        charge = view.get("charge")
        if charge:
            yield charge.get("created"), "stripe", f"charge {charge.get('id')} {charge.get('status')}"
        for refund in view.get("refunds") or ():
            what = f"refund {refund.get('id')} of {refund.get('amount')}: {refund.get('status')}"
            yield refund.get("created"), "stripe", what
        dispute = view.get("dispute")
        if dispute and dispute.get("created"):
            yield dispute.get("created"), "stripe", f"dispute {dispute.get('id')}: {dispute.get('status')}"
    for event in events:
        what = f"{event.get('type')} received: {event.get('status')}, {event.get('attempts') or 0} attempt(s)"
        yield event.get("receivedAt"), "event", what
    for failure in failures:
        what = f"{failure.get('actor')} failed for good ({failure.get('state')}): {failure.get('error')}"
        yield failure.get("lastFailedAt"), "failure", what
    for note in emails:
        yield note.get("createdAt"), "email", f"{note.get('template')} to send"
        if note.get("sentAt"):
            yield note.get("sentAt"), "email", f"{note.get('template')} sent"
        if note.get("failedAt"):
            yield note.get("failedAt"), "email", f"{note.get('template')} failed: {note.get('lastError')}"
    if enrollment is not None:
        yield enrollment.get("updatedAt"), "enrollment", f"enrollment {enrollment.get('status')}"
    for record in audit:
        what = f"{record.get('action')} by {record.get('who')} via {record.get('via')} ({record.get('state')})"
        yield record.get("at"), "audit", what


def timeline(*gathered: Any) -> list[dict[str, Any]]:
    """The story's dated entries, oldest first (the sort is stable: a document's own order stays)."""
    dated = [(at, source, what) for when, source, what in _entries(*gathered) if (at := _moment(when)) is not None]
    return [{"at": at, "source": source, "what": what} for at, source, what in sorted(dated, key=lambda e: e[0])]


def ask_stripe(intent_id: str | None, stripe: StripeReads) -> tuple[Mapping[str, Any] | None, str | None, bool]:
    """Stripe's view, or None with why; the flag says whether Stripe failed us (no intent is not a failure)."""
    if not intent_id:
        return None, NO_INTENT, False
    try:
        return stripe.payment_view(intent_id), None, False
    except StripeUnavailable as why:
        return None, str(why), True


def story(key: str, deps: StoryDeps) -> dict[str, Any] | None:
    """Everything about the payment ``key`` names (``pi_…`` or ``_id``), or None when there is none."""
    payment = deps.reads.payment(key)
    if payment is None:
        return None
    intent_id = payment.get("paymentId")
    view, stripe_error, unreachable = ask_stripe(intent_id, deps.stripe)
    objects = [str(i) for i in (intent_id, payment.get("chargeId"), (payment.get("dispute") or {}).get("id")) if i]
    objects += [str(r["id"]) for r in payment.get("refunds") or () if r.get("id")]
    events = deps.reads.events_of(objects) if objects else []
    event_ids = [str(e["_id"]) for e in events]
    failures = deps.reads.failures_of(str(intent_id or ""), event_ids)
    emails = deps.reads.emails_of(payment["_id"])
    enrollment = deps.reads.enrollment_of(payment)
    audit = deps.reads.audit_of(str(intent_id or ""), event_ids, [str(f["_id"]) for f in failures])
    facts = facts_of(
        payment, events, failures, emails, enrollment, view, stripe_error if unreachable else None, deps.clock()
    )
    return {
        "payment": payment,
        "stripe": view,
        "stripeError": stripe_error,
        "events": events,
        "failures": failures,
        "emails": emails,
        "enrollment": enrollment,
        "audit": audit,
        "timeline": timeline(payment, view, events, failures, emails, enrollment, audit),
        "diagnosis": [asdict(finding) for finding in diagnose(facts)],
    }
