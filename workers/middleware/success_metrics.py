"""Keep the success metrics measured: every worker process, every 30 s, measures each window whose
last measurement went stale, if no other process is at it (``CachedMeasure.refresh`` claims the
window first). The ops pages then read a measurement at most a little older than its freshness
(docs/success-metrics.md), and never wait for a month of payments to be read.
"""

from __future__ import annotations

from dramatiq import Broker

from domain.success_metrics import WINDOWS
from usecases.success_metrics import FRESH_FOR, CachedMeasure
from workers.middleware.periodic import Periodic


class MeasureSuccess(Periodic):
    name = "success-metrics"

    def __init__(self, metrics: CachedMeasure, interval_seconds: float = min(FRESH_FOR.values())) -> None:
        super().__init__(interval_seconds)
        self.metrics = metrics

    def round(self, broker: Broker) -> None:
        for name in WINDOWS:
            self.metrics.refresh(name)
