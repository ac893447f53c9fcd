"""Give back what Redis holds for this live worker but the worker does not hold in memory.

A fetch Redis ran but whose answer the consumer never read (the call timed out while Redis was
frozen, then Redis ran the buffered script once it answered again) leaves its messages in this
process's ack set, and a consumer replaced after a fault drops the messages it had fetched and
not handed out yet. Nothing in the process knows of them and it keeps heartbeating, so
``RequeueDeadWorkers`` never returns them: they wait until the process exits, and Stripe does
not resend an event it got a 200 for.

Every ``interval`` seconds this compares, for each queue the process consumes (its delay queues
included), the ids in its ack set (one ``SMEMBERS`` each, in one round trip) with what its
consumer holds (``Consumer.held``: fetched and not handed out yet, or handed out and not yet
acked, nacked or given back), and requeues with Dramatiq's own script an id found in Redis and
not in memory in two rounds in a row. A fetch in flight has moved its ids into the ack set
before the consumer holds them: two rounds, read Redis first, rule that out as long as a fetch's
answer takes less than ``interval`` to arrive. A message stranded this way is back in its queue
within two intervals of Redis answering again.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from dramatiq import Broker as DramatiqBroker

from adapters.compat import dramatiq as internals
from workers.broker import WorkerBroker
from workers.middleware.periodic import Periodic

log = logging.getLogger(__name__)

#: Seconds between rounds: much longer than a fetch's answer takes, short next to Stripe's patience.
CHECK_INTERVAL = 2.0


class RequeueUnheld(Periodic):
    name = "unheld-acks"

    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        super().__init__(interval)
        #: Per queue, the ids the last round found in Redis and not in memory.
        self.unheld: dict[str, set[str]] = {}

    def after_worker_boot(self, broker: DramatiqBroker, worker: Any) -> None:
        internals.check_dramatiq_internals(broker, worker)  # what tells a held message from a stranded one
        super().after_worker_boot(broker, worker)

    def round(self, broker: DramatiqBroker) -> None:
        assert isinstance(broker, WorkerBroker)
        last, self.unheld = self.unheld, {}  # a round that fails starts the count again
        try:
            self.unheld = self.check(broker, last)
        except redis.RedisError as error:
            log.warning("ack sets not checked: Redis did not answer", extra={"error": repr(error)})

    @staticmethod
    def check(broker: WorkerBroker, last: dict[str, set[str]]) -> dict[str, set[str]]:
        """Requeue what ``last`` and this round both found unheld; returns what this round found unheld."""
        consumers = dict(broker.consumers)
        queues = sorted(consumers)
        pipe = broker.client.pipeline(transaction=False)
        for queue in queues:
            pipe.smembers(ack_set(broker, queue))
        found = pipe.execute() if queues else []
        unheld: dict[str, set[str]] = {}
        for queue, members in zip(queues, found, strict=True):
            held = broker.consumers.get(queue, consumers[queue]).held()  # read after Redis answered
            unheld[queue] = {member.decode() for member in members} - held
        for queue, ids in unheld.items():
            stale = ids & last.get(queue, set())
            if stale:
                internals.requeue(broker, queue, *sorted(stale))
                log.warning(
                    "gave back %d messages this worker's ack set held but the worker did not",
                    len(stale),
                    extra={"queue": queue, "outcome": "requeued"},
                )
            ids -= stale
        return unheld


def ack_set(broker: WorkerBroker, queue: str) -> str:
    """This process's ack set for ``queue``, keyed as Dramatiq's scripts key it."""
    return internals.ack_set(broker.namespace, broker.broker_id, queue)
