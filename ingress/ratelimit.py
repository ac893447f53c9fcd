"""Rate limits in Redis (fixed one-minute windows): per user against card testing, per user and per
payment on refunds (each one a Stripe call and two emails).

Counting in Redis keeps the limit right with any number of ingress processes. When Redis cannot
be reached the limiter fails OPEN (the request is allowed, with a warning in the log): a customer
must still be able to pay while only the limiter's store is down, and card testing stays bounded
by Stripe's own limits and MongoDB's one open payment per customer and service meanwhile; refunds
by what is left to refund of each payment.
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)


class RateLimiter:
    """``hit(key)`` counts one request; returns 0 when allowed, else seconds until the window ends."""

    def __init__(self, client: redis.Redis, per_minute: int) -> None:
        self.client = client
        self.per_minute = per_minute

    def hit(self, key: str, per_minute: int | None = None) -> int:
        """``per_minute`` overrides the limiter's own limit for this key."""
        window = int(time.time() // 60)
        name = f"ratelimit:{key}:{window}"
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, 120)
                count, _ = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            # Fail open, on purpose (see the module's docstring): allow, and say so in the log.
            log.warning("rate limiter unavailable; request allowed", extra={"error": repr(exc)})
            return 0
        if int(count) <= (self.per_minute if per_minute is None else per_minute):
            return 0
        return max(1, (window + 1) * 60 - int(time.time()))
