"""Keep the local stack up: a part that dies on its own is restarted on its port, with a back-off.

The stack never stops because one part died (README.md#what-make-run-starts). ``Supervisor.tick()``
is called every half second by ``make run``: each dead part is restarted once its back-off has
passed (1 s, then doubling up to 30 s while it keeps dying; back to 1 s after it stayed up for a
minute), and every death and restart is logged with the part's log tail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.stack import Stack

log = logging.getLogger("devstack.supervisor")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: A part that stayed up this long is healthy again: its next death starts from the first back-off.
STABLE_AFTER = 60.0


@dataclass
class _Part:
    backoff: float = FIRST_BACKOFF
    retry_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, stack: Stack, clock: Callable[[], float] = time.monotonic) -> None:
        self.stack = stack
        self.clock = clock
        self.parts: dict[str, _Part] = {}
        self.restarts = 0

    def tick(self) -> None:
        """Notice dead parts and restart those whose back-off has passed."""
        now = self.clock()
        for name in self.stack.dead_parts():
            part = self.parts.setdefault(name, _Part(started_at=now))
            if part.retry_at is None:
                if now - part.started_at >= STABLE_AFTER:
                    part.backoff = FIRST_BACKOFF
                proc = self.stack.children[name].proc
                code = proc.returncode if proc is not None else None
                log.warning(
                    "%s exited (code %s); restarting in %.0f s\n%s",
                    name,
                    code,
                    part.backoff,
                    self.stack.children[name].log_tail(10),
                )
                part.retry_at = now + part.backoff
            if now >= part.retry_at:
                self._restart(name, part)

    def _restart(self, name: str, part: _Part) -> None:
        part.backoff = min(part.backoff * 2, MAX_BACKOFF)  # the wait before the next restart, if it dies again
        try:
            self.stack.restart_part(name)
            log.warning("%s restarted", name)
            self.restarts += 1
            part.retry_at = None
        except Exception as error:  # it died again while starting
            log.error("%s did not come back: %s", name, str(error).splitlines()[0])
            part.retry_at = self.clock() + part.backoff
        part.started_at = self.clock()
