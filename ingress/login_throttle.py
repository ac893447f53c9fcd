"""Failed dashboard logins per client address: after ``limit`` in a window, that address waits.

Without it, wrong ops tokens could be tried as fast as the ingress answers
(docs/performance.md#figures-from-code-comments). Failures are counted in Redis (one key per
address, living one window from the first failure), so every ingress process sees the same count;
once an address reaches the limit every login from it, right token or not, is refused until the key
expires (a correct guess among refusals would otherwise still tell). A successful login clears the
count. When Redis cannot be reached each process counts in its own memory instead (the bound is then
per process, not lost), with a warning: ops need the dashboard most when something is down, so this
fails neither open nor shut.

The address is ``request.client.host``: behind a proxy, uvicorn's ``--forwarded-allow-ips``
decides whether that is the proxy's or the client's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

#: Failed logins an address may make per window.
LIMIT = 5
#: Seconds of the window, counted from an address's first failure.
WINDOW = 60
#: Addresses the memory fallback tracks at most (oldest windows dropped first).
MEMORY_CAP = 10_000


class LoginThrottle:
    def __init__(
        self,
        client: redis.Redis,
        limit: int = LIMIT,
        window: int = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.limit = limit
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[int, float]] = {}  # address -> (failures, window ends)

    @staticmethod
    def _key(address: str) -> str:
        return f"ops-login-failures:{address}"

    def wait(self, address: str) -> int:
        """Seconds ``address`` must wait before its next login (0: it may try now)."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.get(self._key(address))
                pipe.ttl(self._key(address))
                count, ttl = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("login throttle: Redis unavailable, counting in memory", extra={"error": repr(exc)})
            return self._memory_wait(address)
        if count is None or int(count) < self.limit:
            return 0
        return max(1, int(ttl)) if int(ttl) > 0 else self.window

    def failed(self, address: str) -> None:
        """Count one failed login of ``address``."""
        key = self._key(address)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first failure
                pipe.incr(key)  # keeps the key's expiry
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("login throttle: Redis unavailable, counting in memory", extra={"error": repr(exc)})
            self._memory_failed(address)

    def succeeded(self, address: str) -> None:
        """A right token: the address starts afresh."""
        with self._lock:
            self._memory.pop(address, None)
        try:
            self.client.delete(self._key(address))
        except (redis.RedisError, OSError) as exc:
            log.warning("login throttle: Redis unavailable", extra={"error": repr(exc)})

    def _memory_wait(self, address: str) -> int:
        with self._lock:
            count, ends = self._memory.get(address, (0, 0.0))
            left = ends - self.clock()
            if left <= 0 or count < self.limit:
                return 0
            return max(1, int(left + 0.999))

    def _memory_failed(self, address: str) -> None:
        at = self.clock()
        with self._lock:
            count, ends = self._memory.get(address, (0, 0.0))
            if ends <= at:
                count, ends = 0, at + self.window
            self._memory[address] = (count + 1, ends)
            if len(self._memory) > MEMORY_CAP:
                for stale in sorted(self._memory, key=lambda a: self._memory[a][1])[: len(self._memory) - MEMORY_CAP]:
                    del self._memory[stale]
