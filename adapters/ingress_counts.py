"""``ingress_counts``: what the ingress refused, per minute, for the workers' alert evaluator.

The ingress counts its webhook answers for Prometheus in its own memory, which a worker cannot
read. The outcomes alerts watch (``invalid_signature``, ``broker_unavailable``) are also added
here, in memory (``add``: no I/O, on the event loop), and written to MongoDB in one bulk
``$inc`` per flush (``flush``, every few seconds and at shutdown): never one write per request.
MongoDB, not Redis: a ``broker_unavailable`` answer means Redis is down. A flush that fails keeps
its counts for the next one. One document per outcome and minute, kept two days (TTL index).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from adapters.mongo import Doc, now

log = logging.getLogger(__name__)

#: The webhook outcomes the alerts read.
WATCHED = ("invalid_signature", "broker_unavailable")

#: How often the ingress writes its counts.
FLUSH_SECONDS = 5.0

#: How long a minute's count is kept.
KEEP = timedelta(days=2)

#: Minutes held in memory at most while MongoDB is away (older ones are dropped, logged).
MAX_PENDING = 120


def ensure_ingress_count_indexes(db: Database[Doc]) -> None:
    keep = int(KEEP.total_seconds())
    db.ingress_counts.create_index([("minute", ASCENDING)], name="minute_ttl", expireAfterSeconds=keep)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class IngressCounts:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.ingress_counts
        self._pending: Counter[tuple[str, datetime]] = Counter()
        self._lock = threading.Lock()

    def add(self, outcome: str, at: datetime | None = None) -> None:
        """Count one answer (in memory only)."""
        if outcome in WATCHED:
            with self._lock:
                self._pending[(outcome, _minute(at or now()))] += 1

    def flush(self) -> int:
        """Write what was counted since the last flush, in one bulk write; returns the answers written."""
        with self._lock:
            taken, self._pending = self._pending, Counter()
        if not taken:
            return 0
        requests = [
            UpdateOne(
                {"_id": f"{outcome}:{minute.isoformat()}"},
                {"$inc": {"count": count}, "$setOnInsert": {"outcome": outcome, "minute": minute}},
                upsert=True,
            )
            for (outcome, minute), count in sorted(taken.items(), key=lambda item: item[0][1])
        ]
        try:
            self.collection.bulk_write(requests, ordered=False)
        except PyMongoError as error:
            with self._lock:
                self._pending.update(taken)
                for key in sorted({k[1] for k in self._pending})[:-MAX_PENDING]:
                    for outcome in WATCHED:
                        self._pending.pop((outcome, key), None)
            log.warning("ingress counts not written; kept for the next flush", extra={"error": repr(error)})
            return 0
        return sum(taken.values())

    def since(self, start: datetime) -> dict[str, int]:
        """Answers of each watched outcome counted from ``start``'s minute on (``start`` rounded down)."""
        totals = dict.fromkeys(WATCHED, 0)
        for doc in self.collection.find({"minute": {"$gte": _minute(start)}}, {"outcome": 1, "count": 1}):
            if doc.get("outcome") in totals:
                totals[doc["outcome"]] += int(doc.get("count", 0))
        return totals
