"""Give back delayed messages that a Redis outage strands in this process.

When a consumer loses its Redis connection, Dramatiq drops the delayed messages it held in
memory (retries waiting for their backoff), while Redis keeps them in this process's ack set.
The process keeps heartbeating, so queue maintenance never returns them: they wait until the
process exits (Dramatiq issue #527). Dramatiq replaces a consumer's delay queue when that
happens, and ``workers.consumer.Consumer`` names in ``broker.stranded`` a queue whose held messages
it could not give back on another fault, so this middleware watches for both; then every delayed
message in this process's ack set for that queue that the consumer does not hold is requeued
(once Redis answers). A message promoted twice in a race is processed twice, which the actors
tolerate. This loss window and the others: docs/architecture.md#loss-windows-and-what-closes-them.

All of that leans on Dramatiq internals (``adapters.compat.dramatiq``): its check stops the worker
at boot if they changed, instead of letting the watcher fail unseen.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from dramatiq import Broker
from dramatiq.middleware import Middleware

from adapters.compat import dramatiq as internals

log = logging.getLogger(__name__)

#: Seconds between checks (in memory; Redis is asked only after a consumer lost its connection).
CHECK_INTERVAL = 0.5


class RequeueStrandedDelays(Middleware):
    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        internals.check_dramatiq_internals(broker, worker)
        self._thread = threading.Thread(target=self._watch, args=(broker, worker), name="stranded-delays", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()

    def _watch(self, broker: Any, worker: Any) -> None:
        """Run rounds until shutdown; a round that fails unexpectedly is logged and the next one runs."""
        seen: dict[str, int] | None = None
        while True:
            try:
                seen = self._round(broker, worker, seen)
            except Exception:
                log.exception("RequeueStrandedDelays: a check for stranded delays failed; trying again next round")
            if self._stop.wait(self.interval):
                return

    def _round(self, broker: Any, worker: Any, seen: dict[str, int] | None) -> dict[str, int]:
        """One check: requeue for each replaced delay queue; returns the queues to compare with next."""
        current = self._delay_queues(worker)
        if seen is None:
            return current
        stranded: set[str] = getattr(broker, "stranded", set())
        for queue_name, queue_id in current.items():
            named = queue_name in stranded
            if seen.get(queue_name, queue_id) == queue_id and not named:
                continue
            try:
                stranded.discard(queue_name)
                self.requeue(broker, internals.consumer_threads(worker)[queue_name], queue_name)
            except redis.RedisError as error:  # still down: try again next round
                log.warning("stranded delays not requeued yet", extra={"queue": queue_name, "error": repr(error)})
                current[queue_name] = seen.get(queue_name, queue_id)
                if named:
                    stranded.add(queue_name)
        return current

    @staticmethod
    def _delay_queues(worker: Any) -> dict[str, int]:
        """Identity of each delay consumer's in-memory queue; a new one means the old was dropped."""
        threads = list(internals.consumer_threads(worker).items())
        return {name: internals.delay_queue_identity(c) for name, c in threads if name.endswith(internals.DELAY_SUFFIX)}

    def requeue(self, broker: Any, consumer: Any, queue_name: str) -> int:
        """Requeue this process's delayed messages of ``queue_name`` that the consumer does not hold."""
        held = internals.held_delayed(consumer)
        acks = internals.ack_set(broker.namespace, broker.broker_id, queue_name)
        stranded = [m.decode() for m in broker.client.smembers(acks) if m.decode() not in held]
        if stranded:
            internals.requeue(broker, queue_name, *stranded)
            log.warning("requeued delayed messages stranded by a Redis outage", extra={"queue": queue_name})
        return len(stranded)
