"""Requeue a dead worker's in-flight messages within a bounded time, whatever the traffic (DESIGN §3.3).

At boot and every ``interval`` seconds each worker process runs ``requeue_dead_workers``: it keeps
this process's heartbeat fresh even while every thread is busy (so a live worker is never taken
for dead), and gives back the messages of any worker whose heartbeat is older than the broker's
``heartbeat_timeout``. A worker killed at time t has its messages back in the queues by
t + heartbeat_timeout + interval at the latest.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from adapters.dead_workers import check_dispatch_script, requeue_dead_workers

log = logging.getLogger(__name__)


class RequeueDeadWorkers(Middleware):
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        check_dispatch_script()
        assert isinstance(broker, RedisBroker)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="dead-workers", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, broker: RedisBroker) -> None:
        while True:
            try:
                for broker_id, count in requeue_dead_workers(broker).items():
                    log.warning(
                        "requeued %d messages of dead worker %s", count, broker_id, extra={"outcome": "requeued"}
                    )
            except Exception:
                # Redis away or refusing: the next round tries again; never let the thread die unseen.
                log.exception("dead-worker requeue failed; trying again next round")
            if self._stop.wait(self.interval):
                return
