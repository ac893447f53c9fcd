"""What the rules need from the outside world. Adapters implement these; tests may hand in fakes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from domain.events import StripeEvent
from domain.payments import Payment


class Payments(Protocol):
    def by_intent(self, intent_id: str) -> Payment | None:
        """The payment whose ``paymentId`` is this PaymentIntent id, read from the primary."""

    def move(self, payment: Payment, target: str, event_id: str, event_at: datetime) -> bool:
        """Set ``target`` only if the document still has ``payment``'s status and lastEventAt.

        Returns False when another writer got there first; the caller reloads and decides again.
        """


class Inbox(Protocol):
    def receive(self, event: StripeEvent) -> str:
        """Record a delivery (first one stores the event); return the event's status after it."""

    def finish(self, event_id: str, status: str) -> None:
        """Mark the event ``processed`` or ``ignored``."""

    def fail(self, event_id: str, error: str) -> None:
        """Mark the event ``failed`` with the reason (it will not be retried by the worker)."""


class StripeGateway(Protocol):
    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        """The intent as Stripe has it now, as plain JSON data."""


@dataclass(frozen=True)
class Deps:
    """Everything a handler may touch, built once per process in the bootstrap."""

    payments: Payments
    inbox: Inbox
    stripe: StripeGateway
