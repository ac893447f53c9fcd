"""In-memory adapters for unit tests of the rules (the bootstrap hands in real ones)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.events import StripeEvent
from domain.payments import Payment
from domain.ports import ACTIVATED, ALREADY, DUPLICATE, Deps, Links


class FakePayments:
    def __init__(self, *payments: Payment) -> None:
        self.rows = {p.intent_id: p for p in payments}
        self.history: list[tuple[str, str]] = []
        self.reviews: dict[str, str] = {}

    def by_intent(self, intent_id: str) -> Payment | None:
        return self.rows.get(intent_id)

    def move(self, payment: Payment, target: str, event_id: str | None, event_at: datetime | None) -> bool:
        current = self.rows[payment.intent_id]
        if (current.status, current.last_event_at) != (payment.status, payment.last_event_at):
            return False
        last = event_at if event_id is not None else current.last_event_at
        self.rows[payment.intent_id] = dataclasses.replace(current, status=target, last_event_at=last)
        self.history.append((target, event_id or "-"))
        return True

    def flag_review(self, payment: Payment, reason: str, event_id: str | None) -> None:
        self.reviews.setdefault(payment.intent_id, reason)

    def link_enrollment(self, payment: Payment, enrollment_id: Any) -> None:
        self.rows[payment.intent_id] = dataclasses.replace(self.rows[payment.intent_id], enrollment_id=enrollment_id)


class FakeEnrollments:
    """One enrollment per (customer, service), like the unique index."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, Any], dict[str, Any]] = {}

    def activate(self, payment: Payment, verified: bool) -> tuple[str, Any]:
        key = (payment.customer.id, payment.service_id)
        row = self.rows.get(key)
        if row is None or row["status"] not in ("active", "suspended"):
            row = {
                "id": f"enr-{len(self.rows)}",
                "status": "active",
                "payment": payment.record_id,
                "verified": verified,
            }
            self.rows[key] = row
            return ACTIVATED, self.rows[key]["id"]
        if row["payment"] != payment.record_id:
            return DUPLICATE, row["id"]
        row["verified"] = row["verified"] or verified
        return ALREADY, row["id"]


class FakeOutbox:
    """Notifications by dedupe key; ``sent`` counts what a real outbox would email."""

    def __init__(self) -> None:
        self.notes: dict[str, tuple[str, str, Mapping[str, str]]] = {}

    def notify(self, key: str, template: str, to: str, context: Mapping[str, str]) -> None:
        self.notes.setdefault(key, (template, to, dict(context)))

    def sent(self, template: str) -> list[str]:
        return [to for tpl, to, _ in self.notes.values() if tpl == template]


class FakeInbox:
    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    def receive(self, event: StripeEvent) -> str:
        self.attempts[event.id] = self.attempts.get(event.id, 0) + 1
        return self.status.setdefault(event.id, "received")

    def finish(self, event_id: str, status: str) -> None:
        self.status[event_id] = status

    def fail(self, event_id: str, error: str) -> None:
        self.status[event_id] = "failed"
        self.errors[event_id] = error


class FakeStripe:
    def __init__(self, intents: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.intents = dict(intents or {})
        self.calls: list[str] = []

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        self.calls.append(intent_id)
        return self.intents[intent_id]


def fake_deps(*payments: Payment, intents: Mapping[str, Mapping[str, Any]] | None = None) -> Deps:
    return Deps(
        payments=FakePayments(*payments),
        inbox=FakeInbox(),
        stripe=FakeStripe(intents),
        enrollments=FakeEnrollments(),
        outbox=FakeOutbox(),
        links=Links(app_base_url="http://app.test", ops_email="ops@example.test"),
    )
