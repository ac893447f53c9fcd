"""MongoDB and Redis commands served, read before and after a measured stretch.

MongoDB: the counting stand-in's ``benchCommandCounts`` (``child/counting_mongo.py``), per command
name, leaving out the drivers' ``hello`` heartbeats and a worker's boot-time index checks. Redis:
``INFO commandstats`` of the stack's own Redis, per command; Redis counts the calls a Lua script
makes as well as the script's own call (Dramatiq's broker is one ``evalsha`` per enqueue, fetch
or ack), so both show in the breakdown. What this harness itself sends to Redis (its ``INFO``
calls and its queue polls) is counted in ``own`` and subtracted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from pymongo.errors import PyMongoError

#: The command the counting stand-in answers with its counts (``child/counting_mongo.py``).
COUNTS_COMMAND = "benchCommandCounts"
#: Not work per event: driver heartbeats, a worker's boot-time index checks, the harness's reads.
MONGO_IGNORED = frozenset({"hello", "isMaster", "ismaster", "createIndexes", "listIndexes", COUNTS_COMMAND})


@dataclass(frozen=True)
class Counts:
    mongo: Counter[str] | None  # None: the stand-in does not count (another commit's layout)
    redis: Counter[str]


@dataclass(frozen=True)
class PerEvent:
    mongo: Counter[str] | None
    redis: Counter[str]
    events: int

    @staticmethod
    def _line(counts: Counter[str] | None, events: int, top: int) -> str:
        if counts is None:
            return "n/a"
        total = sum(counts.values()) / events
        parts = ", ".join(f"{name} {calls / events:.2f}" for name, calls in counts.most_common(top) if calls > 0)
        return f"{total:.1f} ({parts})" if parts else f"{total:.1f}"

    def mongo_total(self) -> float | None:
        return None if self.mongo is None else sum(self.mongo.values()) / self.events

    def redis_total(self) -> float:
        return sum(self.redis.values()) / self.events

    def mongo_line(self, top: int = 6) -> str:
        return self._line(self.mongo, self.events, top)

    def redis_line(self, top: int = 6) -> str:
        return self._line(self.redis, self.events, top)


class CommandCounters:
    def __init__(self, mongo_client: Any, redis_client: Any) -> None:
        self.mongo = mongo_client
        self.redis = redis_client
        self.own: Counter[str] = Counter()  # Redis commands this harness sent

    def read(self) -> tuple[Counts, Counter[str]]:
        """The counts now, and what the harness had sent to Redis before this read."""
        own = Counter(self.own)
        stats = self.redis.info("commandstats")
        self.own["info"] += 1
        redis = Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})
        try:
            reply = self.mongo.admin.command(COUNTS_COMMAND)
            mongo: Counter[str] | None = Counter({k: int(v) for k, v in reply["counts"].items()})
        except PyMongoError:
            mongo = None
        return Counts(mongo, redis), own

    @staticmethod
    def per_event(start: tuple[Counts, Counter[str]], end: tuple[Counts, Counter[str]], events: int) -> PerEvent:
        (a, own_a), (b, own_b) = start, end
        redis = b.redis - a.redis - (own_b - own_a)  # Counter subtraction keeps positives only
        mongo = None
        if a.mongo is not None and b.mongo is not None:
            mongo = Counter({k: v for k, v in (b.mongo - a.mongo).items() if k not in MONGO_IGNORED})
        return PerEvent(mongo, redis, max(1, events))
