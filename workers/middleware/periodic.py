"""A worker middleware that runs one round of work at boot and then every ``interval`` seconds.

The round runs on a daemon thread of the worker process; a round that fails (MongoDB or Redis
away) is logged with its traceback and the next one runs on time, so the thread never dies unseen.
Shutdown stops the thread between rounds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class Periodic(Middleware):
    #: The thread's name, for ``ps`` and log lines.
    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self, broker: Broker) -> None:
        """One round of work (subclasses)."""
        raise NotImplementedError

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name=self.name, daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, broker: Broker) -> None:
        while True:
            try:
                self.round(broker)
            except Exception:
                log.exception("%s round failed; trying again in %.1f s", self.name, self.interval)
            if self._stop.wait(self.interval):
                return
