"""Dumb stand-ins for the ports MongoDB does not serve: Stripe, the outbox. They store, never decide.

The use cases are tested against the real MongoDB adapters (the stand-in, or ``TEST_MONGODB_URI``);
the rules are tested as pure functions. Email delivery is tested against stores of its own
(``StoredNotifications``, ``ScriptedSender``), its outbox and mailer against MongoDB and SMTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo.database import Database

from adapters.disputes import MongoDisputes
from adapters.enrollments import MongoEnrollments
from adapters.inbox import MongoInbox
from adapters.mongo import MongoPayments
from adapters.refunds import MongoRefunds
from domain.errors import ProviderRefused
from domain.payments import Payment
from usecases.ports import Deps, Enrollments, Links, Notice


class FakeStripe:
    """Intents as Stripe would report them now, by id, and the refunds made; every retrieval is logged.

    ``refuse`` makes the next refunds fail as Stripe's 4xx would; ``crash_after_refund`` raises
    right after a refund was made (a worker dying before it recorded Stripe's answer);
    ``fail_after_refund`` is raised once right after a refund was made (Stripe made it, and the call
    still ended in an error: a timeout, a 409 for the key in use, a refusal of a retried call).
    """

    def __init__(self, intents: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.intents = dict(intents or {})
        self.calls: list[str] = []
        self.refunds: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.refuse: str | None = None
        self.crash_after_refund = False
        self.fail_after_refund: Exception | None = None

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        self.calls.append(intent_id)
        return self.intents[intent_id]

    def list_events(self, event_type: str, since: int) -> list[Mapping[str, Any]]:
        return [e for e in self.events if e["type"] == event_type and e["created"] >= since]

    def list_refunds(self, intent_id: str) -> list[Mapping[str, Any]]:
        return [r for r in self.refunds if r["payment_intent"] == intent_id]

    def create_refund(
        self, intent_id: str, amount: int | None, reason: str | None, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        if self.refuse:
            raise ProviderRefused(self.refuse)
        if amount is None:  # the rest of the charge: what the intent took, less what was refunded
            intent = self.intents[intent_id]
            taken = int(intent.get("amount_received", intent.get("amount", 0)))
            amount = taken - sum(int(r["amount"]) for r in self.refunds if r["payment_intent"] == intent_id)
        refund = {
            "id": f"re_{len(self.refunds) + 1}",
            "object": "refund",
            "amount": amount,
            "payment_intent": intent_id,
            "reason": reason,
            "metadata": dict(metadata),
            "status": "succeeded",
            "key": idempotency_key,
        }
        self.refunds.append(refund)
        if self.crash_after_refund:
            self.crash_after_refund = False
            raise ConnectionResetError("the worker died before recording the refund")
        if self.fail_after_refund is not None:
            error, self.fail_after_refund = self.fail_after_refund, None
            raise error
        return refund


class CrashAfterCount(MongoRefunds):
    """Refunds whose first count is written, then the worker dies (killed right after "refund recorded")."""

    crashed = False

    def count(self, payment: Any, stripe_id: str, amount: int, reserved: int) -> bool:
        counted = super().count(payment, stripe_id, amount, reserved)
        if not self.crashed:
            self.crashed = True
            raise ConnectionResetError("the worker died right after recording the refund")
        return counted


class RecordingJobs:
    """Every job asked for, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.sources: list[str | None] = []
        self.refunds: list[tuple[str, str]] = []

    def enqueue_event(self, payload: Mapping[str, Any], source: str | None = None) -> None:
        self.events.append(dict(payload))
        self.sources.append(source)

    def enqueue_refund(self, intent_id: str, request_id: str) -> None:
        self.refunds.append((intent_id, request_id))


class RecordingOutbox:
    """Every notice asked for, in order, and the batches they came in.

    The real outbox's dedupe is tested against MongoDB.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, str]]] = []
        self.batches: list[list[str]] = []

    def notify_all(self, notices: Sequence[Notice]) -> None:
        self.calls.extend((n.key, n.template, n.to, dict(n.context)) for n in notices)
        self.batches.append([n.key for n in notices])

    def keys(self, template: str) -> set[str]:
        return {key for key, tpl, _, _ in self.calls if tpl == template}

    def recipients(self, template: str) -> set[str]:
        return {to for _, tpl, to, _ in self.calls if tpl == template}


class BrokenEnrollments:
    """Enrollments that cannot be written (a validator refusing, MongoDB refusing the collection)."""

    def activate(self, payment: Any, verified: bool) -> tuple[str, Any]:
        raise RuntimeError("enrollments refused the write")

    def mark_verified(self, payment: Any) -> None:
        raise RuntimeError("enrollments refused the write")

    def cancel(self, payment: Any, payment_status: str) -> None:
        raise RuntimeError("enrollments refused the write")

    def suspend(self, payment: Any, dispute_id: str) -> None:
        raise RuntimeError("enrollments refused the write")

    def reinstate(self, payment: Any, dispute_id: str, payment_status: str) -> None:
        raise RuntimeError("enrollments refused the write")


LINKS = Links(app_base_url="http://app.test", ops_email="ops@example.test")


class Attempts:
    """Which claim holders' attempts still run, as the broker tells the claims (``adapters.dead_workers.attempt_over``).

    The tests call the use cases one after another, so an earlier attempt has ended (its worker
    acked or died) unless a test says it still runs, a live worker elsewhere holding its claim.
    """

    def __init__(self) -> None:
        self.running: set[str] = set()

    def over(self, holder: str) -> bool:
        return holder not in self.running


def mongo_deps(
    db: Database[Any],
    intents: Mapping[str, Mapping[str, Any]] | None = None,
    enrollments: Enrollments | None = None,
    attempts: Attempts | None = None,
) -> Deps:
    """The real MongoDB adapters on ``db``, with a fake Stripe and a recording outbox."""
    return Deps(
        payments=MongoPayments(db),
        inbox=MongoInbox(db),
        stripe=FakeStripe(intents),
        enrollments=enrollments or MongoEnrollments(db),
        outbox=RecordingOutbox(),
        links=LINKS,
        refunds=MongoRefunds(db, (attempts or Attempts()).over),
        jobs=RecordingJobs(),
        disputes=MongoDisputes(db),
    )


class StoredNotifications:
    """The outbox's notifications by dedupe key, as email delivery sees them; every call is recorded.

    ``claim`` takes a ``pending`` one (counting the attempt under a new token) and returns a copy;
    the other writes store what they are given. Fencing by the token is tested against MongoDB.
    """

    def __init__(self, *docs: Mapping[str, Any]) -> None:
        self.docs = {str(d["dedupeKey"]): {"status": "pending", "attempts": 0, **d} for d in docs}
        self.calls: list[tuple[str, str, str | None, str | None]] = []  # (method, key, holder or token, text)

    def claim(self, key: str, holder: str | None = None) -> Mapping[str, Any] | None:
        self.calls.append(("claim", key, holder, None))
        doc = self.docs.get(key)
        if doc is None or doc["status"] != "pending":
            return None
        doc.update(status="sending", attempts=doc["attempts"] + 1, claimToken=f"token-{len(self.calls)}")
        return dict(doc)

    def mark_sent(self, key: str, token: str) -> None:
        self._store("mark_sent", key, token, "sent", None)

    def release(self, key: str, token: str, error: str) -> None:
        self._store("release", key, token, "pending", error)

    def mark_failed(self, key: str, token: str, error: str) -> None:
        self._store("mark_failed", key, token, "failed", error)

    def cancel(self, key: str, token: str, reason: str) -> None:
        self._store("cancel", key, token, "cancelled", reason)

    def _store(self, method: str, key: str, token: str, status: str, text: str | None) -> None:
        self.calls.append((method, key, token, text))
        self.docs[key].update(status=status, lastError=text)


class ScriptedSender:
    """Renders every template alike; each ``send`` raises the next scripted fault, or is kept.

    ``render_fault`` is raised by every ``render``. The ``withdrawn`` check each send was handed is
    kept for the test to ask: the real mailer asks it before each SMTP try.
    """

    def __init__(self, *faults: Exception, render_fault: Exception | None = None) -> None:
        self.faults = list(faults)
        self.render_fault = render_fault
        self.sent: list[tuple[str, str, str]] = []  # (to, subject, Message-ID)
        self.checks: list[Callable[[], str | None]] = []

    def render(self, template: str, context: Mapping[str, str]) -> tuple[str, str, str]:
        if self.render_fault is not None:
            raise self.render_fault
        return f"{template} subject", "text\n", "<p>html</p>\n"

    def send(
        self, to: str, subject: str, text: str, html: str, message_id: str, withdrawn: Callable[[], str | None]
    ) -> None:
        self.checks.append(withdrawn)
        if self.faults:
            raise self.faults.pop(0)
        self.sent.append((to, subject, message_id))


class PaymentsByIntent:
    """Payments by PaymentIntent id, for what only reads one (``Payments.by_intent``)."""

    def __init__(self, *payments: Payment) -> None:
        self.payments = {p.intent_id: p for p in payments}

    def by_intent(self, intent_id: str) -> Payment | None:
        return self.payments.get(intent_id)


class CountedOutcomes:
    """Every email outcome reported, in order."""

    def __init__(self) -> None:
        self.counted: list[str] = []

    def count(self, outcome: str) -> None:
        self.counted.append(outcome)
