"""Are the workers alive, and is any queue stuck? Read from Dramatiq's Redis keys.

Dramatiq records a heartbeat (``<ns>:__heartbeats__``, broker id → ms) on every call any broker
makes, the ingress's enqueues and the ops command's included, so a heartbeat alone does not say
"worker". A worker process's broker id therefore starts with ``WORKER_ID_PREFIX``
(``workers.broker``): a live worker is such an id whose heartbeat is within the heartbeat timeout.

A queue's oldest ready message: the ready list is a FIFO (enqueues push at its tail, fetches pop
its head; a message given back goes to the tail), so the first few entries hold the oldest. Its
age counts from when it became ready: its enqueue time, or its ``eta`` for a delayed retry.

Both are exposed to Prometheus by the ingress's ``/metrics`` (``payments_workers_alive``,
``payments_queue_oldest_message_age_seconds{queue}``) and read by the alert evaluator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import redis
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from adapters.compat import dramatiq as internals
from adapters.dead_workers import queues
from adapters.queue import Broker

log = logging.getLogger(__name__)

#: How many entries at the head of a ready list are looked at for the oldest.
HEAD = 20

#: A worker process's broker id starts with this; an ingress's or the ops command's never does.
WORKER_ID_PREFIX = "worker-"


class QueueHealth:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def workers_alive(self, now_ms: int | None = None) -> int:
        """Worker processes whose Dramatiq heartbeat is within the timeout at ``now_ms``."""
        at = internals.current_millis() if now_ms is None else now_ms
        key = internals.heartbeats_key(self.broker.namespace)
        beats: list[Any] = self.broker.client.zrangebyscore(key, at - self.broker.heartbeat_timeout, "+inf")
        return sum(1 for beat in beats if beat.decode().startswith(WORKER_ID_PREFIX))

    def oldest_ages(self, now_ms: int | None = None) -> dict[str, float]:
        """Seconds the oldest ready message of each queue has waited (0 for an empty queue)."""
        at = internals.current_millis() if now_ms is None else now_ms
        client, ns = self.broker.client, self.broker.namespace
        ages: dict[str, float] = {}
        for queue in queues(self.broker):
            if queue.endswith(internals.DELAY_SUFFIX):
                continue
            ids = client.lrange(internals.queue_key(ns, queue), 0, HEAD - 1)
            raw = client.hmget(internals.messages_key(ns, queue), ids) if ids else []
            ready_at = [_ready_at(data) for data in raw if data is not None]
            ages[queue] = max([(at - t) / 1000 for t in ready_at if t is not None] + [0.0])
        return ages

    def collector(self) -> _Gauges:
        return _Gauges(self)


def _ready_at(data: bytes | str) -> int | None:
    """When a stored message became ready (ms): its ``eta`` if it was delayed, else its enqueue time."""
    try:
        message: dict[str, Any] = json.loads(data)
        stamps = [message.get("message_timestamp"), (message.get("options") or {}).get("eta")]
        return max(int(s) for s in stamps if isinstance(s, int | float))
    except (ValueError, TypeError, AttributeError):
        return None


class _Gauges:
    """``payments_workers_alive`` and ``payments_queue_oldest_message_age_seconds{queue}``, read at each
    scrape (no series while Redis is down: the scrape still answers)."""

    def __init__(self, health: QueueHealth) -> None:
        self.health = health

    def collect(self) -> Iterable[Metric]:
        try:
            alive = self.health.workers_alive()
            ages = self.health.oldest_ages()
        except (redis.RedisError, OSError) as error:
            log.warning("worker liveness not scraped", extra={"error": repr(error)})
            return
        yield GaugeMetricFamily(
            "payments_workers_alive", "Worker processes whose Dramatiq heartbeat is within the timeout", value=alive
        )
        gauge = GaugeMetricFamily(
            "payments_queue_oldest_message_age_seconds",
            "Seconds the oldest ready message of each queue has waited",
            labels=["queue"],
        )
        for queue, age in sorted(ages.items()):
            gauge.add_metric([queue], age)
        yield gauge
