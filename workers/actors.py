"""The actors: thin wrappers that hand a message to a use case and let exceptions drive retries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dramatiq
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from adapters import logs
from adapters.dead_workers import claim_holder
from adapters.queue import REFUNDS_ACTOR, REFUNDS_QUEUE, STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE
from adapters.settings import Settings
from domain.errors import PermanentError
from domain.success_metrics import WEBHOOK
from usecases.inbox import process_event
from usecases.ports import Deps
from usecases.refunds import execute_refund

#: Longest one refund run may take (two Stripe calls of 10 s, each with its brief retries), shorter
#: than the claim it holds on its request (``adapters.refunds.REFUND_LEASE``).
REFUND_TIME_LIMIT_MS = 2 * 60 * 1000


def declare_actor(
    broker: Broker,
    fn: Callable[..., None],
    *,
    name: str,
    queue: str,
    max_retries: int,
    settings: Settings,
    time_limit_ms: int | None = None,
    priority: int = 0,
) -> dramatiq.Actor[Any, Any]:
    """Declare ``fn`` as an actor with the project's retry policy (docs/configuration.md#retries-and-sweeps).

    Bounded exponential backoff from the settings; ``PermanentError`` goes to the dead letters
    at once, without retries. ``time_limit_ms`` overrides Dramatiq's 10-minute time limit.
    ``priority``: of messages a worker process has fetched, its threads take the lowest first.
    """
    limits: dict[str, Any] = {} if time_limit_ms is None else {"time_limit": time_limit_ms}
    return dramatiq.actor(
        actor_name=name,
        queue_name=queue,
        broker=broker,
        max_retries=max_retries,
        min_backoff=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
        throws=(PermanentError,),
        priority=priority,
        **limits,
    )(fn)


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
    """Declare the Stripe events and refunds actors on ``broker`` with their retry policy; returns them by name."""

    def process_stripe_event(event: dict[str, Any], source: str = WEBHOOK) -> None:
        # A message without ``source`` (every webhook's, and those queued before it existed) came by webhook.
        with logs.log_context(event_id=str(event.get("id")), payment_id=_payment_id(event)):
            process_event(event, deps, source)

    stripe_events = declare_actor(
        broker,
        process_stripe_event,
        name=STRIPE_EVENTS_ACTOR,
        queue=STRIPE_EVENTS_QUEUE,
        max_retries=settings.retry_max_retries,
        settings=settings,
    )

    def process_refund(intent_id: str, request_id: str) -> None:
        current = CurrentMessage.get_current_message()
        holder = claim_holder(broker, current) if current is not None and isinstance(broker, RedisBroker) else None
        with logs.log_context(payment_id=intent_id):
            execute_refund(intent_id, request_id, deps, holder)

    refunds = declare_actor(
        broker,
        process_refund,
        name=REFUNDS_ACTOR,
        queue=REFUNDS_QUEUE,
        max_retries=settings.retry_max_retries,
        settings=settings,
        time_limit_ms=REFUND_TIME_LIMIT_MS,
    )
    return {STRIPE_EVENTS_ACTOR: stripe_events, REFUNDS_ACTOR: refunds}
