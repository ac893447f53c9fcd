"""Dramatiq's retries, minus a loss window (docs/architecture.md#loss-windows-and-what-closes-them).

Dramatiq's ``Retries`` re-enqueues a failed message from an ``after_process_message`` hook;
when Redis blips at that moment, ``emit_after`` logs the error and the worker then acks the
message: it is gone, with no dead letter (Dramatiq PR #545). Here the re-enqueue is retried
until Redis answers; if it never does within ``give_up_after``, the message is failed so it is
nacked into the dead letters (and recorded in ``job_failures``) instead of silently acked.

That ``Retries`` re-enqueues through the broker object it is handed (here a proxy) is a Dramatiq
internal, checked at boot with the others (``adapters.compat.dramatiq``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from dramatiq import Broker, Message
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import Retries

log = logging.getLogger(__name__)

#: What Redis can answer to an enqueue that a later attempt may get through: every Redis error.
_OUTAGE = (redis.RedisError, BrokerConnectionError)


class _PatientBroker:
    """Proxy handed to ``Retries``: ``enqueue`` waits out a Redis outage instead of failing."""

    def __init__(self, broker: Broker, message: Any, give_up_after: float) -> None:
        self._broker = broker
        self._message = message
        self._give_up_after = give_up_after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any] | None:
        deadline = time.monotonic() + self._give_up_after
        pause = 0.1
        while True:
            try:
                return self._broker.enqueue(message, delay=delay)
            except _OUTAGE as error:
                if time.monotonic() >= deadline:
                    log.error("retry could not be enqueued; failing the message", extra={"error": repr(error)})
                    self._message.fail()
                    return None
                log.warning("retry enqueue failed; waiting for Redis", extra={"error": repr(error)})
                time.sleep(pause)
                pause = min(pause * 2, 5.0)


class DurableRetries(Retries):
    """``Retries`` whose re-enqueue survives a Redis blip.

    It also counts failed attempts and stamps the first failure time in the message options,
    which travel with every retry, for the failure record.
    """

    def __init__(self, *, give_up_after: float = 300.0, **options: Any) -> None:
        super().__init__(**options)
        self.give_up_after = give_up_after

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is not None:
            message.options.setdefault("first_failed_at", int(time.time() * 1000))
            message.options["failed_attempts"] = message.options.get("failed_attempts", 0) + 1
        patient = _PatientBroker(broker, message, self.give_up_after)
        try:
            super().after_process_message(patient, message, result=result, exception=exception)
        except Exception:
            # Dramatiq's emit_after would log this and ack the message: fail it instead.
            log.exception("retry could not be scheduled; failing the message")
            message.fail()
