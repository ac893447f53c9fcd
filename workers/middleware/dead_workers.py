"""Requeue a dead worker's in-flight messages within a bounded time, whatever the traffic.

At boot and every ``interval`` seconds each worker process runs ``requeue_dead_workers``: it keeps
this process's heartbeat fresh even while every thread is busy (so a live worker is never taken
for dead), and gives back the messages of any worker whose heartbeat is older than the broker's
``heartbeat_timeout``. A worker killed at time t has its messages back in the queues by
t + heartbeat_timeout + interval at the latest (docs/architecture.md#loss-windows-and-what-closes-them).
"""

from __future__ import annotations

import logging
from typing import Any

from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker

from adapters.compat import dramatiq as internals
from adapters.dead_workers import requeue_dead_workers
from workers.middleware.periodic import Periodic

log = logging.getLogger(__name__)


class RequeueDeadWorkers(Periodic):
    name = "dead-workers"

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        internals.check_dramatiq_internals(broker, worker)  # the dispatch script's maintenance, among others
        super().after_worker_boot(broker, worker)

    def round(self, broker: Broker) -> None:
        assert isinstance(broker, RedisBroker)
        for broker_id, count in requeue_dead_workers(broker).items():
            log.warning("requeued %d messages of dead worker %s", count, broker_id, extra={"outcome": "requeued"})
