"""Run the stale-work sweep (``usecases.sweeps.heal``) at boot and every few seconds in each worker process."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware

from usecases.ports import Deps
from usecases.sweeps import heal

log = logging.getLogger(__name__)


class HealStaleWork(Middleware):
    def __init__(self, deps: Deps, interval: float, older_than: timedelta) -> None:
        self.deps = deps
        self.interval = interval
        self.older_than = older_than
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stale-work", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                heal(self.deps, self.older_than)
            except Exception:
                # MongoDB or Redis away: the next round tries again.
                log.exception("stale-work sweep failed; trying again next round")
            if self._stop.wait(self.interval):
                return
