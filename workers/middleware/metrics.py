"""Count each message's outcome and time each attempt (``adapters.metrics``), seen from Dramatiq.

Placed among ``workers.composition``'s extra middleware, so its ``after_*`` hooks run once
``DurableRetries`` decided the message's fate: a failed attempt whose message is now
``failed`` went to the dead letters, any other failed attempt will run again.

- every actor: ``payments_messages_retried_total`` and ``payments_messages_dead_total``;
- ``process_stripe_event``: ``payments_events_total{type,outcome}`` (processed, retry, dead) and
  ``payments_event_processing_seconds{type}`` (the type from the event; ``other`` for a type no
  handler subscribes to, so the label's values stay bounded);
- ``send_notification`` counts its own emails (``workers/emails.py``: sent, failed, cancelled);
- ``process_refund``: ``payments_refunds_total`` (processed on success, failed when dead).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware

from adapters import metrics
from adapters.queue import REFUNDS_ACTOR, STRIPE_EVENTS_ACTOR
from usecases.handlers import SUBSCRIBED

#: Outcome of a successful message, per actor, in that actor's counter.
_DONE = {REFUNDS_ACTOR: "processed"}
_COUNTERS = {REFUNDS_ACTOR: metrics.REFUNDS}


def event_type(message: Any) -> str:
    """The Stripe event type a ``process_stripe_event`` message carries, or ``other``."""
    args = message.args
    event = args[0] if args else None
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) and kind in SUBSCRIBED else "other"


class Metrics(Middleware):
    def __init__(self) -> None:
        self._started = threading.local()  # (message id, perf_counter) of the attempt on this thread

    def before_process_message(self, broker: Broker, message: Any) -> None:
        self._started.attempt = (message.message_id, time.perf_counter())

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        seconds = self._elapsed(message)
        if exception is None:
            self._count(message, "processed", seconds)
        else:
            self._count(message, "dead" if message.failed else "retry", seconds)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        """A skipped message (too old: ``AgeLimit``) that was failed went to the dead letters."""
        self._elapsed(message)
        if message.failed:
            self._count(message, "dead", None)

    def _elapsed(self, message: Any) -> float | None:
        attempt: tuple[str, float] | None = getattr(self._started, "attempt", None)
        self._started.attempt = None
        if attempt is None or attempt[0] != message.message_id:  # an earlier hook refused it before ours ran
            return None
        return time.perf_counter() - attempt[1]

    @staticmethod
    def _count(message: Any, outcome: str, seconds: float | None) -> None:
        actor = str(message.actor_name)
        if outcome == "retry":
            metrics.MESSAGES_RETRIED.labels(actor).inc()
        elif outcome == "dead":
            metrics.MESSAGES_DEAD.labels(actor).inc()
        if actor == STRIPE_EVENTS_ACTOR:
            kind = event_type(message)
            metrics.EVENTS.labels(kind, outcome).inc()
            if seconds is not None:
                metrics.EVENT_PROCESSING_SECONDS.labels(kind).observe(seconds)
        elif actor in _COUNTERS and outcome != "retry":
            _COUNTERS[actor].labels(_DONE[actor] if outcome == "processed" else "failed").inc()
