"""The actors: thin wrappers that hand a message to the domain and let exceptions drive retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dramatiq
from dramatiq import Broker

from adapters import logs
from adapters.settings import Settings
from domain.inbox import process_event
from domain.ports import Deps
from workers.broker import STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE, declare_actor


def _payment_id(event: Mapping[str, Any]) -> str | None:
    """The PaymentIntent an event is about, for log lines."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return None
    if obj.get("object") == "payment_intent":
        return str(obj.get("id"))
    intent = obj.get("payment_intent")
    return intent if isinstance(intent, str) else None


def declare(broker: Broker, deps: Deps, settings: Settings) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every actor on ``broker`` with its retry policy; returns them by name."""

    def process_stripe_event(event: dict[str, Any]) -> None:
        with logs.log_context(event_id=str(event.get("id")), payment_id=_payment_id(event)):
            process_event(event, deps)

    stripe_events = declare_actor(
        broker,
        process_stripe_event,
        name=STRIPE_EVENTS_ACTOR,
        queue=STRIPE_EVENTS_QUEUE,
        max_retries=settings.retry_max_retries,
        settings=settings,
    )
    return {STRIPE_EVENTS_ACTOR: stripe_events}
