"""What is wrong with one payment, in a support person's words, each finding with what fixes it.

``diagnose(facts)`` runs every rule of ``RULES`` over the facts a use case gathered (ours and,
when it could be asked, Stripe's) and returns the findings, in the table's order. Each rule is
small and looks at the facts only: no I/O here. When Stripe could not be asked, the rules that
need its view claim nothing and ``stripe_unreachable`` says so (docs/operations.md#diagnosis-codes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import refunds
from domain.payments import COMPLETED, DISPUTE_CLOSED, DISPUTE_LOST, PAID, REFUNDED, REQUIRES_ACTION, status_of_intent

#: A payment paid this recently may still be on its way to activation (webhook → enrollment takes ms to seconds).
ACTIVATION_GRACE = timedelta(minutes=2)
#: Enrollment statuses in which the customer has the service.
ENROLLED = frozenset({"active", "suspended"})
#: Payment statuses after which this service itself cancels the enrollment.
ENDS_ENROLLMENT = frozenset({REFUNDED, DISPUTE_LOST})


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    fix: str


@dataclass(frozen=True)
class RefundFact:
    id: str  # Stripe's re_… id, else the request id
    amount: int
    status: str
    failure_reason: str | None = None


@dataclass(frozen=True)
class StripeFacts:
    """Stripe's view now: the intent's status and amounts, its charge's refunds and dispute."""

    status: str
    amount: int
    currency: str
    amount_refunded: int = 0  # the charge's, as Stripe counts it
    dispute_status: str | None = None
    dispute_due_by: datetime | None = None
    next_action: str | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at, about one payment (``intent_id`` may be unset: no intent yet)."""

    intent_id: str | None
    status: str
    amount: int
    currency: str
    now: datetime
    amount_refunded: int = 0
    paid_at: datetime | None = None
    activated: bool = False
    review_reason: str | None = None
    review_resolution: str | None = None
    succeeded_event: bool = False  # a payment_intent.succeeded for it is in the inbox
    failed_events: tuple[str, ...] = ()  # inbox events left failed without a dead failure record
    dead_failures: tuple[str, ...] = ()  # job_failures still dead
    refunds: tuple[RefundFact, ...] = ()
    dispute_status: str | None = None
    dispute_due_by: datetime | None = None
    enrollment_status: str | None = None  # None: no enrollment for the customer and service
    enrollment_ours: bool = False  # the enrollment names this payment
    failed_emails: tuple[str, ...] = ()  # templates of notifications failed for good
    stripe: StripeFacts | None = None
    stripe_error: str | None = None  # why Stripe could not be asked (None: it was, or there is no intent)

    @property
    def paid(self) -> bool:
        return self.status in PAID

    @property
    def ref(self) -> str:
        return self.intent_id or "ID"


Rule = Callable[[Facts], Finding | None]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown date"


def webhook_not_received(f: Facts) -> Finding | None:
    if f.stripe is None or f.stripe.status != "succeeded" or f.succeeded_event:
        return None
    return Finding(
        "webhook_not_received",
        "Stripe says the payment succeeded, but its payment_intent.succeeded event never reached this service.",
        "Reconcile: `payments-ops reconcile`, or the dashboard's \u201cReconcile with Stripe\u201d button; "
        "then check Stripe's webhook endpoint and STRIPE_WEBHOOK_SECRET.",
    )


def event_failed(f: Facts) -> Finding | None:
    if f.dead_failures:
        ids = ", ".join(f.dead_failures)
        return Finding(
            "event_failed",
            f"Processing failed for good and is waiting in the failed jobs: {ids}.",
            f"Fix the cause shown in the failure, then replay it: `payments-ops failures replay --id "
            f"{f.dead_failures[0]} --yes`, or the \u201cReplay\u201d button.",
        )
    if f.failed_events:
        return Finding(
            "event_failed",
            f"The Stripe event {f.failed_events[0]} is marked failed in the inbox.",
            f"Replay it: `payments-ops events replay {f.failed_events[0]}`, or the event's \u201cReplay\u201d button.",
        )
    return None


def paid_not_activated(f: Facts) -> Finding | None:
    if f.status != COMPLETED or f.activated or f.review_reason or f.review_resolution:
        return None
    if f.paid_at is not None and f.now - f.paid_at < ACTIVATION_GRACE:
        return None  # still on its way
    return Finding(
        "paid_not_activated",
        f"The customer paid ({_when(f.paid_at)}) but the enrollment was never activated.",
        "Replay its failed job if there is one (`payments-ops failures replay --id ID --yes`); otherwise the "
        "workers' sweep activates it within minutes: check `payments-ops stuck list` and that workers run.",
    )


def enrollment_changed_by_app(f: Facts) -> Finding | None:
    if not f.activated or f.status in ENDS_ENROLLMENT:
        return None
    if f.enrollment_status is None:
        what = "removed"
    elif not f.enrollment_ours:
        what = "given to another payment"
    elif f.enrollment_status not in ENROLLED:
        what = f"set to {f.enrollment_status}"
    else:
        return None
    return Finding(
        "enrollment_changed_by_app",
        f"This payment activated the enrollment, and the MERN app has since {what} it.",
        "No payments-ops command undoes it (this service never activates a payment twice): ask the MERN app's "
        "admins; if the customer should get the money back, refund through the API or Stripe's dashboard.",
    )


def awaiting_customer_action(f: Facts) -> Finding | None:
    waiting = f.status == REQUIRES_ACTION or (f.stripe is not None and f.stripe.status == "requires_action")
    if not waiting:
        return None
    return Finding(
        "awaiting_customer_action",
        "Stripe waits for the customer to authenticate the card (3-D Secure).",
        "Nothing to do on our side: the customer finishes it on the checkout page or pays again; "
        "`payments-ops reconcile` settles payments left waiting for 30 minutes.",
    )


def review_required(f: Facts) -> Finding | None:
    if not f.review_reason:
        return None
    return Finding(
        "review_required",
        f"The payment is held for a person: {f.review_reason.replace('_', ' ')}.",
        f"Decide: `payments-ops review activate|refund|dismiss {f.ref}`, or the review buttons on this page.",
    )


def refund_pending(f: Facts) -> Finding | None:
    pending = [r for r in f.refunds if r.status == refunds.PENDING]
    if not pending:
        return None
    total = sum(r.amount for r in pending)
    return Finding(
        "refund_pending",
        f"{len(pending)} refund(s) of {total} (minor units) not finished yet.",
        "The refunds worker finishes them; if one stays pending, `payments-ops failures list --actor "
        "process_refund` and `payments-ops stuck list`.",
    )


def refund_failed(f: Facts) -> Finding | None:
    failed = [r for r in f.refunds if r.status in refunds.NOT_REFUNDED]
    if not failed:
        return None
    why = failed[0].failure_reason or "no reason given"
    return Finding(
        "refund_failed",
        f"{len(failed)} refund(s) failed; the first: {failed[0].id} ({why}).",
        "Refund again if it still stands: Stripe's dashboard, or a new refund request through the API.",
    )


def dispute_open(f: Facts) -> Finding | None:
    status = f.dispute_status
    due = f.dispute_due_by
    if f.stripe is not None and f.stripe.dispute_status is not None:
        status, due = f.stripe.dispute_status, f.stripe.dispute_due_by or due
    if status is None or status in DISPUTE_CLOSED:
        return None
    return Finding(
        "dispute_open",
        f"The customer's bank disputes the charge ({status}); evidence is due by {_when(due)}.",
        "Answer it in Stripe's dashboard before the deadline; the outcome reaches this service by itself.",
    )


def email_failed(f: Facts) -> Finding | None:
    if not f.failed_emails:
        return None
    return Finding(
        "email_failed",
        f"Email(s) not delivered: {', '.join(f.failed_emails)}.",
        "Fix SMTP or the address, then `payments-ops failures replay --actor send_notification --yes`, "
        "or \u201cReplay\u201d on the dashboard.",
    )


def stripe_disagrees(f: Facts) -> Finding | None:
    s = f.stripe
    if s is None:
        return None
    differences = []
    expected = PAID if s.status == "succeeded" else {status_of_intent({"status": s.status, "last_payment_error": None})}
    if s.status == "requires_payment_method" and f.status in ("pending", "failed"):
        expected = {f.status}  # Stripe says the same for "not tried yet" and "declined"
    if f.status not in expected:
        differences.append(f"Stripe says {s.status}, we say {f.status}")
    if s.amount != f.amount or s.currency.upper() != f.currency.upper():
        differences.append(f"Stripe's amount is {s.amount} {s.currency.upper()}, ours {f.amount} {f.currency}")
    if f.paid and s.amount_refunded != f.amount_refunded:
        differences.append(f"Stripe refunded {s.amount_refunded}, we counted {f.amount_refunded}")
    if not differences:
        return None
    return Finding(
        "stripe_disagrees",
        "Stripe and this service disagree: " + "; ".join(differences) + ".",
        "`payments-ops reconcile` (or \u201cReconcile with Stripe\u201d) brings missed events in; "
        "if it persists, replay this payment's failed jobs or compare with Stripe's dashboard.",
    )


def stripe_unreachable(f: Facts) -> Finding | None:
    if f.stripe_error is None:
        return None
    return Finding(
        "stripe_unreachable",
        f"Stripe could not be asked ({f.stripe_error}); findings that need Stripe's view are left out.",
        "Look again in a minute (reload, or `payments-ops payment ID`); if it lasts, check STRIPE_SECRET_KEY "
        "and Stripe's status with `payments-ops doctor`.",
    )


#: Every rule, in the order findings are shown: the one table to read.
RULES: tuple[tuple[str, Rule], ...] = (
    ("stripe_unreachable", stripe_unreachable),
    ("webhook_not_received", webhook_not_received),
    ("event_failed", event_failed),
    ("paid_not_activated", paid_not_activated),
    ("enrollment_changed_by_app", enrollment_changed_by_app),
    ("awaiting_customer_action", awaiting_customer_action),
    ("review_required", review_required),
    ("refund_pending", refund_pending),
    ("refund_failed", refund_failed),
    ("dispute_open", dispute_open),
    ("email_failed", email_failed),
    ("stripe_disagrees", stripe_disagrees),
)
CODES = tuple(code for code, _ in RULES)


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding the facts support, in ``RULES`` order; an empty list for a healthy payment."""
    return [found for _, rule in RULES if (found := rule(facts)) is not None]
