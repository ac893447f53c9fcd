"""The worker's consumer: the door every message passes before Dramatiq's worker sees it, and the
worker's fetching policy (the emails yield to payment work; delay queues poll less often)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from dramatiq import Message, MessageProxy
from dramatiq.errors import ConnectionClosed, DecodeError

from adapters.compat import dramatiq as internals
from adapters.queue import Refused
from adapters.signing import refusal

log = logging.getLogger(__name__)

#: How many times less often a delay queue's consumer may poll when idle (see ``Consumer``).
DELAY_POLL_FACTOR = 10
#: Messages a yielding queue's consumer holds at most while the process has other work.
YIELDING_PREFETCH = 1
#: Seconds a yielding queue goes on yielding after the process was given other work.
YIELD_WINDOW = 1.0


class Consumer(internals.RedisConsumer):
    """Dramatiq's Redis consumer, whose thread survives any Redis fault.

    Dramatiq's consumer thread lets only connection errors through quietly: a timeout (Redis
    frozen), or a failure while it gives its held delayed messages back before restarting, kills
    the thread, and that queue is never consumed again until the process restarts. Both become
    ``ConnectionClosed`` here; messages it could not give back stay in this process's ack set,
    named in ``broker.stranded`` for ``workers.middleware.stranded`` to requeue once Redis answers.

    A delay queue's consumer backs off to ``DELAY_POLL_FACTOR`` times the others' cap: it holds
    retries waiting out backoffs of seconds, and fetching them sooner only means holding them
    longer. Its thread moves due retries to their queue once per poll, so a retry is late by at
    most that cap (200 ms at ``WORKER_POLL_MS=20``), and an idle process polls Redis half as often.

    A queue the broker names as yielding (the emails) fetches no more than ``YIELDING_PREFETCH``
    messages at a time while this process holds messages of another queue (events, refunds), or
    was given one less than ``YIELD_WINDOW`` ago (so the short gaps between a burst's events do
    not let the emails back in): priority alone only orders the messages a process holds, so a
    burst's emails would otherwise fill the threads and take the CPU its activations wait for.
    Otherwise it fetches its full prefetch.

    ``handed_out`` names, by Redis id, the messages given to the worker and not yet acked, nacked
    or given back: with ``message_cache`` it is all this process holds of its ack set for the
    queue (``workers.middleware.unheld`` gives back the rest). A queue's consumer replaced after a
    fault takes over the old one's set (its messages wait in the work queue or run, and are acked
    through the new consumer), except a delay queue's: Dramatiq drops or gives back what its
    thread held before building a new consumer.

    Built by ``workers.broker.WorkerBroker`` (its ``broker``), which holds the process's state.
    """

    #: Milliseconds: the cap of this consumer's back-off when a poll finds nothing.
    timeout: int

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        self.delayed = queue_name == internals.dq_name(internals.q_name(queue_name))
        if self.delayed:
            timeout *= DELAY_POLL_FACTOR
        self.yields = queue_name in broker.yielding
        super().__init__(broker, queue_name, prefetch, timeout)
        kept: set[str] = set() if self.delayed else broker.handed_out.get(queue_name, set())
        self.handed_out = broker.handed_out[queue_name] = kept
        broker.consumers[queue_name] = self  # replaces the one a restart after a fault left

    @property
    def prefetch(self) -> int:
        """Read by ``__next__`` before each fetch: how many messages may be held."""
        if self.yields and (time.monotonic() < self.broker.busy_until or self._others_held()):
            return min(self._prefetch, YIELDING_PREFETCH)
        return self._prefetch

    @prefetch.setter
    def prefetch(self, value: int) -> None:
        self._prefetch = value

    def _others_held(self) -> bool:
        return any(c.outstanding_message_count for c in self.broker.consumers.values() if c.urgent)

    @property
    def urgent(self) -> bool:
        """Whether the messages it holds make the yielding queues wait (a delay queue's are only
        waiting out their backoff)."""
        return not (self.yields or self.delayed)

    def held(self) -> set[str]:
        """The Redis ids of the messages of this queue this process holds in memory."""
        return {redis_id for redis_id, _ in list(self.message_cache)} | set(self.handed_out)

    def ack(self, message: Any) -> None:
        self._settle(super().ack, message)

    def nack(self, message: Any) -> None:
        self._settle(super().nack, message)

    def _settle(self, call: Callable[[Any], None], message: Any) -> None:
        """Ack or nack ``message``; it stays held only while Dramatiq tries again (``ConnectionClosed``)."""
        try:
            call(message)
        except ConnectionClosed:
            raise
        except BaseException:
            self.handed_out.discard(message.options["redis_message_id"])
            raise
        self.handed_out.discard(message.options["redis_message_id"])

    def requeue(self, messages: Any) -> None:
        given = list(messages)
        try:
            super().requeue(given)
        except redis.RedisError as error:
            self.broker.stranded.add(self.queue_name)
            raise ConnectionClosed(error) from None
        finally:  # no longer in memory either way
            self.handed_out.difference_update(m.options["redis_message_id"] for m in given)

    def __next__(self) -> Any:
        """Dramatiq's ``_RedisConsumer.__next__``, with each message let in only through ``_admit``."""
        try:
            while True:
                if self.message_cache:
                    redis_id, data = self.message_cache.pop(0)
                    self.misses = 0
                    message = self._admit(redis_id, data)
                    if message is None:
                        continue
                    self.queued_message_ids.add(message.message_id)
                    self.handed_out.add(redis_id)
                    if self.urgent:
                        self.broker.busy_until = time.monotonic() + YIELD_WINDOW
                    return MessageProxy(message)
                fetched: list[tuple[str, bytes]] = []
                if self.outstanding_message_count < self.prefetch:
                    fetched = self.broker.fetch(self.queue_name, self.prefetch - self.outstanding_message_count)
                    self.message_cache = fetched
                if not fetched:
                    self.misses, backoff_ms = internals.compute_backoff(self.misses, max_backoff=self.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None
        except (redis.ConnectionError, redis.TimeoutError) as error:  # Dramatiq converts only the first
            raise ConnectionClosed(error) from None

    def _admit(self, redis_id: str, data: bytes) -> Message[Any] | None:
        """The message stored as ``redis_id``, or None when it must not run: then it is dead-lettered
        under that id, recorded and logged here, before the worker sees it (so before its ``eta`` is
        honoured, its actor looked up or anything else in it read)."""
        if not data:  # an id whose message is gone (Dramatiq skips these too): nothing to keep
            internals.ack(self.broker, self.queue_name, redis_id)
            return None
        try:
            message: Message[Any] = Message.decode(data)
        except DecodeError as error:
            self._refuse(redis_id, data, None, f"message could not be decoded: {type(error.error).__name__}")
            return None
        actors = self.broker.queue_actors.get(internals.q_name(self.queue_name), ())
        reason = refusal(self.broker.signer, message, queue=self.queue_name, redis_id=redis_id, actors=actors)
        if reason is None:
            return message
        self._refuse(redis_id, data, message, reason)
        return None

    def _refuse(self, redis_id: str, data: bytes, message: Message[Any] | None, reason: str) -> None:
        internals.nack(self.broker, self.queue_name, redis_id)
        message_id = message.message_id if message is not None and isinstance(message.message_id, str) else redis_id
        log.error("message refused: %s", reason, extra={"message_id": message_id, "queue": self.queue_name})
        self.broker.on_refused(Refused(self.queue_name, redis_id, data, message, reason))
