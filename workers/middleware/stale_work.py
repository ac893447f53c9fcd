"""Run the stale-work sweep (``usecases.sweeps.heal``) at boot and every few seconds in each worker process."""

from __future__ import annotations

import logging
from datetime import timedelta

from dramatiq import Broker

from usecases.ports import Deps
from usecases.sweeps import heal
from workers.middleware.periodic import Periodic

log = logging.getLogger(__name__)


class HealStaleWork(Periodic):
    name = "stale-work"

    def __init__(self, deps: Deps, interval: float, older_than: timedelta, max_refund_requeues: int = 10) -> None:
        super().__init__(interval)
        self.deps = deps
        self.older_than = older_than
        self.max_refund_requeues = max_refund_requeues

    def round(self, broker: Broker) -> None:
        heal(self.deps, self.older_than, max_refund_requeues=self.max_refund_requeues)
