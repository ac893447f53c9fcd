"""Per-user rate limits in Redis (fixed one-minute windows), against card testing.

Counting in Redis keeps the limit right with any number of ingress processes.
"""

from __future__ import annotations

import time

import redis


class RateLimiter:
    """``hit(key)`` counts one request; returns 0 when allowed, else seconds until the window ends."""

    def __init__(self, client: redis.Redis, per_minute: int) -> None:
        self.client = client
        self.per_minute = per_minute

    def hit(self, key: str) -> int:
        window = int(time.time() // 60)
        name = f"ratelimit:{key}:{window}"
        with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 120)
            count, _ = pipe.execute()
        if int(count) <= self.per_minute:
            return 0
        return max(1, (window + 1) * 60 - int(time.time()))
