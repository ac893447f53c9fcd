"""In-memory adapters for unit tests of the rules (the bootstrap hands in real ones)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.events import StripeEvent
from domain.payments import Payment
from domain.ports import Deps


class FakePayments:
    def __init__(self, *payments: Payment) -> None:
        self.rows = {p.intent_id: p for p in payments}
        self.history: list[tuple[str, str]] = []

    def by_intent(self, intent_id: str) -> Payment | None:
        return self.rows.get(intent_id)

    def move(self, payment: Payment, target: str, event_id: str, event_at: datetime) -> bool:
        current = self.rows[payment.intent_id]
        if (current.status, current.last_event_at) != (payment.status, payment.last_event_at):
            return False
        self.rows[payment.intent_id] = dataclasses.replace(current, status=target, last_event_at=event_at)
        self.history.append((target, event_id))
        return True


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
    return Deps(payments=FakePayments(*payments), inbox=FakeInbox(), stripe=FakeStripe(intents))
