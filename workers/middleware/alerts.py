"""Every minute, one worker process evaluates the alert rules and emails ops on each change.

Every worker process runs this thread. Each round, when ``OPS_EMAIL`` is set, it tries to take
the minute's evaluation: one process across all of them gets it (``usecases.alerts.run_round``),
however many run. The round at boot evaluates nothing: a worker just started may not have beaten
yet, and its first look would be a false "no worker" alarm. docs/alerts.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from dramatiq import Broker

from usecases import alerts
from usecases.ports import AlertDeps
from workers.middleware.periodic import Periodic


class AlertEvaluator(Periodic):
    name = "alert-evaluator"

    def __init__(
        self,
        deps: AlertDeps,
        holder: str,
        interval_seconds: float = alerts.EVERY.total_seconds(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(interval_seconds)
        self.deps = deps
        self.holder = holder
        self.clock = clock
        self.rounds = 0

    def round(self, broker: Broker) -> None:
        self.rounds += 1
        if self.deps.ops_email and self.rounds > 1:
            alerts.run_round(self.deps, self.holder, self.clock())
