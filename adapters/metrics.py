"""The service's Prometheus metrics, every one defined here (``GET /metrics``: docs/api.md#metrics).

The edges count: the webhook route, the workers' ``Metrics`` middleware and the scrape itself
(queue depths); the use cases and the rules never import this module.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (before ``prometheus_client`` is
imported, so in the process's environment), every process writes its counters and histograms
to files there and a scrape adds up the files of every process that shares the directory: the
ingress's ``/metrics`` then shows the workers' metrics too. Unset, each process keeps its own
in memory (the default registry). Queue depths are read from Redis at scrape time, never stored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector as Collector  # re-exported for the ingress

log = logging.getLogger(__name__)

#: The variable that turns multiprocess mode on (prometheus_client's own name).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

if os.environ.get(MULTIPROC_DIR):  # prometheus_client writes there from the first increment on
    os.makedirs(os.environ[MULTIPROC_DIR], exist_ok=True)

#: Outcomes of a webhook delivery (a body refused before its signature is checked is not counted).
WEBHOOK_OUTCOMES = ("enqueued", "ignored", "invalid_signature", "broker_unavailable")

WEBHOOKS = Counter("payments_webhooks", "Stripe webhook deliveries by outcome", ["outcome"])
WEBHOOK_ENQUEUE_SECONDS = Histogram(
    "payments_webhook_enqueue_seconds",
    "Time to hand a verified webhook event to Redis (failed attempts included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS = Counter(
    "payments_events",
    "Stripe event messages by event type and outcome: processed, retry (failed, will run again), dead",
    ["type", "outcome"],
)
EVENT_PROCESSING_SECONDS = Histogram(
    "payments_event_processing_seconds",
    "Time one attempt at a Stripe event took in the worker, by event type",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
MESSAGES_RETRIED = Counter("payments_messages_retried", "Failed attempts scheduled to run again, by actor", ["actor"])
MESSAGES_DEAD = Counter("payments_messages_dead", "Messages sent to the dead letters, by actor", ["actor"])
EMAILS = Counter(
    "payments_emails",
    "Emails by outcome: sent over SMTP, failed for good, cancelled (no longer true when their turn came)",
    ["outcome"],
)
REFUNDS = Counter(
    "payments_refunds",
    "Refund requests carried out by outcome: processed (done, including a refusal by Stripe), failed (dead-lettered)",
    ["outcome"],
)

# Series that exist from the start, at 0, so a rate over them is defined before the first one.
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOKS.labels(_outcome)
for _outcome in ("sent", "failed", "cancelled"):
    EMAILS.labels(_outcome)
for _outcome in ("processed", "failed"):
    REFUNDS.labels(_outcome)

#: Redis queue depths by queue, then by state (``ready``, ``delayed``, ``in_flight``, ``dead``).
Depths = Mapping[str, Mapping[str, int]]


class QueueDepths:
    """``payments_queue_messages{queue,state}``, read from Redis at each scrape (no series if Redis is down)."""

    def __init__(self, depths: Callable[[], Depths]) -> None:
        self.depths = depths

    def collect(self) -> Iterable[Metric]:
        try:
            depths = self.depths()
        except (redis.RedisError, OSError) as error:
            log.warning("queue depths not scraped", extra={"error": repr(error)})
            return
        gauge = GaugeMetricFamily(
            "payments_queue_messages", "Messages in each Redis queue by state", labels=["queue", "state"]
        )
        for queue, states in sorted(depths.items()):
            for state, count in sorted(states.items()):
                gauge.add_metric([queue, state], count)
        yield gauge


#: ``payments_success_metric{metric}`` label → (key in the success metrics, field of it).
SUCCESS_SERIES = {
    "payment_success_rate": ("paymentSuccessRate", "value"),
    "webhook_delivery_rate": ("webhookDeliveryRate", "value"),
    "processing_seconds_mean": ("processingSeconds", "mean"),
    "processing_seconds_p95": ("processingSeconds", "p95"),
    "activation_seconds_mean": ("activationSeconds", "mean"),
    "activation_seconds_p95": ("activationSeconds", "p95"),
    "refund_rate": ("refundRate", "value"),
    "conversion_rate": ("conversionRate", "value"),
}
#: ``payments_revenue_minor{kind}`` label → the revenue row's field.
REVENUE_KINDS = {"gross": "gross", "refunded": "refunded", "dispute_lost": "disputeLost", "net": "net"}
#: The windows exported (the longer ones are for the dashboard and the API).
SUCCESS_WINDOWS = ("1h", "24h")


class SuccessGauges:
    """``payments_success_metric{metric,window}`` and ``payments_revenue_minor{currency,kind,window}``.

    ``measure(window)`` gives the success metrics (docs/success-metrics.md), cached by its owner so a
    scrape never recomputes them; a metric with no value in the window (nothing counted) has no sample.
    """

    def __init__(self, measure: Callable[[str], Mapping[str, Any]]) -> None:
        self.measure = measure

    def collect(self) -> Iterable[Metric]:
        rates = GaugeMetricFamily(
            "payments_success_metric",
            "The seed's success metrics over a window (rates 0..1, times in seconds)",
            labels=["metric", "window"],
        )
        revenue = GaugeMetricFamily(
            "payments_revenue_minor",
            "Revenue of the payments paid in the window, per currency, in minor units",
            labels=["currency", "kind", "window"],
        )
        for window in SUCCESS_WINDOWS:
            try:
                result = self.measure(window)
            except Exception as error:  # MongoDB down: the other metrics are still scraped
                log.warning("success metrics not scraped", extra={"error": repr(error), "window": window})
                continue
            for name, (key, field) in SUCCESS_SERIES.items():
                value = result[key][field]
                if value is not None:
                    rates.add_metric([name, window], float(value))
            for currency, row in sorted(result["revenue"].items()):
                for kind, field in REVENUE_KINDS.items():
                    revenue.add_metric([currency, kind, window], float(row[field]))
        yield rates
        yield revenue


class _Together:
    """Several collectors as one, for ``generate_latest``."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(*extra: Collector) -> tuple[bytes, str]:
    """The Prometheus text of every metric (all processes' in multiprocess mode) and ``extra``; its content type."""
    path = os.environ.get(MULTIPROC_DIR)
    recorded: Collector = MultiProcessCollector(None, path=path) if path else REGISTRY
    return generate_latest(_Together(recorded, *extra)), CONTENT_TYPE_LATEST
