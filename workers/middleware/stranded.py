"""Give back delayed messages that a Redis outage strands in this process (DESIGN §3.2).

When a consumer loses its Redis connection, Dramatiq drops the delayed messages it held in
memory (retries waiting for their backoff), while Redis keeps them in this process's ack set.
The process keeps heartbeating, so queue maintenance never returns them: they wait until the
process exits (Dramatiq issue #527). Dramatiq replaces a consumer's delay queue when that
happens, so this middleware watches for a replaced one; then every delayed message in this
process's ack set for that queue that the consumer does not hold is requeued (once Redis
answers). A message promoted twice in a race is processed twice, which the actors tolerate.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from dramatiq import Broker
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

#: Seconds between checks (in memory; Redis is asked only after a consumer lost its connection).
CHECK_INTERVAL = 0.5


class RequeueStrandedDelays(Middleware):
    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        self._thread = threading.Thread(target=self._watch, args=(broker, worker), name="stranded-delays", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()

    def _watch(self, broker: Any, worker: Any) -> None:
        seen = self._delay_queues(worker)
        while not self._stop.wait(self.interval):
            current = self._delay_queues(worker)
            for queue_name, queue_id in current.items():
                if seen.get(queue_name, queue_id) == queue_id:
                    continue
                try:
                    self.requeue(broker, worker.consumers[queue_name], queue_name)
                except redis.RedisError as error:  # still down: try again next round
                    log.warning("stranded delays not requeued yet", extra={"queue": queue_name, "error": repr(error)})
                    current[queue_name] = seen[queue_name]
            seen = current

    @staticmethod
    def _delay_queues(worker: Any) -> dict[str, int]:
        """Identity of each delay consumer's in-memory queue; a new one means the old was dropped."""
        return {name: id(c.delay_queue) for name, c in list(worker.consumers.items()) if name.endswith(".DQ")}

    def requeue(self, broker: Any, consumer: Any, queue_name: str) -> int:
        """Requeue this process's delayed messages of ``queue_name`` that the consumer does not hold."""
        held = {item.message.options.get("redis_message_id") for item in list(consumer.delay_queue.queue)}
        acks = f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"
        stranded = [m.decode() for m in broker.client.smembers(acks) if m.decode() not in held]
        if stranded:
            broker.do_requeue(queue_name, *stranded)
            log.warning("requeued delayed messages stranded by a Redis outage", extra={"queue": queue_name})
        return len(stranded)
