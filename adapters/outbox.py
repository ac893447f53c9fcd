"""The ``notifications`` outbox (docs/data.md#notifications-the-outbox).

One document per email, keyed by a dedupe key the domain builds (event or action, template,
recipient). Every handler attempt re-asserts its notifications with ``notify_all`` (all of one
step in one bulk write, their messages in one Redis round trip): the first call stores each
``pending``, later calls change nothing, and each call enqueues a send for each not done, so a
crash between the state change and the outbox write is healed by the retry.

The email actor ``claim``s a notification (``pending``, or ``sending`` whose lease ran out, to
``sending`` with a lease and a fresh ``claimToken``), sends it, and marks it ``sent``; a fault
``release``s it back to ``pending``; a permanent problem ``mark_failed``s it. Those three are
fenced by the claim's token: a holder whose lease ran out (and whose notification another
worker claimed since) changes nothing. Concurrent messages for one key are fine:
only one holds the lease, the others return. ``pending_keys`` feeds the periodic sweep.

A claim names its holder, the attempt that took it (``adapters.dead_workers.claim_holder``: the
worker, the queue and the message's Redis id). Another attempt takes a ``sending`` claim over
only when its lease ran out or that attempt is known over (its worker dead, or the message no
longer held by it): a killed send goes out within the redelivery time, not minutes late. The
same message coming back is no reason by itself: a live worker cut off for a moment may still
be running the first attempt.

Statuses: ``pending`` → ``sending`` → ``sent`` | ``failed`` | ``cancelled`` (no longer true when
its turn came, e.g. a "payment failed" email for a payment paid since), and ``sending`` →
``pending`` on a fault.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from uuid import uuid4

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from adapters.dead_workers import attempt_over
from adapters.mongo import Doc, now
from adapters.queue import Broker, notification_message, send
from domain.notices import message_id_for
from usecases.ports import Notice

#: How long a claim holds a notification: longer than the emails actor's time limit
#: (``workers.emails.TIME_LIMIT``), so a send still running is never claimed by another worker.
LEASE = timedelta(minutes=5)

#: Statuses in which a notification still has to be sent.
UNSENT = ("pending", "sending")

#: ``sent`` is written after the server took the email: a MongoDB restart then must not make the
#: message's retry send it again, so the (idempotent, fenced) write waits out a short outage.
_until_recorded = retry(
    retry=retry_if_exception_type(ConnectionFailure),
    stop=stop_after_delay(30),
    wait=wait_exponential(multiplier=0.1, max=2),
    reraise=True,
)


def ensure_outbox_indexes(db: Database[Doc]) -> None:
    """Create the outbox's indexes; safe to run at every start."""
    db.notifications.create_index([("dedupeKey", ASCENDING)], unique=True, name="dedupeKey_unique")
    db.notifications.create_index([("status", ASCENDING), ("updatedAt", ASCENDING)], name="status_updated")


class MongoOutbox:
    def __init__(
        self,
        db: Database[Doc],
        broker: Broker,
        *,
        lease: timedelta = LEASE,
        over: Callable[[str], bool] | None = None,
    ) -> None:
        """``over(holder)``: whether the attempt that took a claim is known over (by default asked of
        ``broker``'s Redis, ``adapters.dead_workers.attempt_over``; without a broker, never)."""
        self.collection: Collection[Doc] = db.notifications
        self.broker = broker
        self.lease = lease
        if over is None and broker is not None:
            over = functools.partial(attempt_over, broker)
        self.over = over

    def notify(self, key: str, template: str, to: str, context: Mapping[str, str]) -> None:
        """One notification: ``notify_all`` of one."""
        self.notify_all([Notice(key, template, to, context)])

    def notify_all(self, notices: Sequence[Notice]) -> None:
        """Store each notification once (idempotent) and enqueue a send for each not done.

        One MongoDB command for all of them (a bulk write of upserts), one message for the sends
        (``notification_message`` of every key not done). Blocking; a MongoDB or Redis outage
        raises, so the caller's job retries.
        """
        first: dict[str, Notice] = {}
        for n in notices:
            first.setdefault(n.key, n)  # one write per key: a bulk write must not upsert a key twice
        unique = list(first.values())
        at = now()
        requests = [
            UpdateOne(
                {"dedupeKey": n.key},
                {
                    "$setOnInsert": {
                        "template": n.template,
                        "recipient": n.to,
                        "context": dict(n.context),
                        "messageId": message_id_for(n.key),
                        "status": "pending",
                        "attempts": 0,
                        "createdAt": at,
                        "updatedAt": at,
                    }
                },
                upsert=True,
            )
            for n in unique
        ]
        try:
            inserted = set(self.collection.bulk_write(requests, ordered=False).upserted_ids or {})
        except BulkWriteError as error:
            # Two upserts of one key raced on MongoDB and the other insert won (11000): that
            # notification exists now and is treated below like any stored before. Anything else
            # (another write error, a write concern not met) fails the job, which retries.
            details = error.details
            if details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in details["writeErrors"]):
                raise
            inserted = {u["index"] for u in details.get("upserted", [])}
        keys = [n.key for i, n in enumerate(unique) if i in inserted]
        stored_before = [n.key for i, n in enumerate(unique) if i not in inserted]
        if stored_before:
            # A retry's re-assertion (never the first attempt's): send only what is not done;
            # ``failed`` is final and ``sent`` is done, a message for either would only be skipped.
            query = {"dedupeKey": {"$in": stored_before}, "status": {"$in": list(UNSENT)}}
            unsent = {doc["dedupeKey"] for doc in self.collection.find(query, {"dedupeKey": 1})}
            keys += [key for key in stored_before if key in unsent]
        if keys:
            send(self.broker, notification_message(*keys))

    def claim(self, key: str, holder: str | None = None) -> Doc | None:
        """Take the notification for sending, or None when it is sent, failed or held by a live attempt.

        Counts the attempt (``attempts``) and holds a lease in ``holder``'s name (this attempt). A
        ``sending`` claim is taken over once its lease ran out, or at once when the attempt that
        holds it is known over (``over``); the takeover is conditional on the very claim seen.
        """
        at = now()

        def take(free: list[Doc]) -> Doc | None:
            return self.collection.find_one_and_update(
                {"dedupeKey": key, "$or": free},
                {
                    "$set": {
                        "status": "sending",
                        "leaseUntil": at + self.lease,
                        "claimToken": uuid4().hex,
                        "claimHolder": holder,
                        "updatedAt": at,
                    },
                    "$inc": {"attempts": 1},
                },
                return_document=ReturnDocument.AFTER,
            )

        taken = take([{"status": "pending"}, {"status": "sending", "leaseUntil": {"$lte": at}}])
        if taken is not None or self.over is None:
            return taken
        held = self.collection.find_one({"dedupeKey": key, "status": "sending"}, {"claimHolder": 1, "claimToken": 1})
        other = held.get("claimHolder") if held else None
        if held is None or not isinstance(other, str) or not self.over(other):
            return None
        return take([{"status": "sending", "claimToken": held.get("claimToken"), "claimHolder": other}])

    @_until_recorded
    def mark_sent(self, key: str, token: str) -> None:
        at = now()
        self.collection.update_one(
            {"dedupeKey": key, "claimToken": token},
            {"$set": {"status": "sent", "sentAt": at, "updatedAt": at}, "$unset": {"leaseUntil": "", "lastError": ""}},
        )

    def release(self, key: str, token: str, error: str) -> None:
        """Back to ``pending`` after a fault, for the next attempt (only while this claim holds it)."""
        self.collection.update_one(
            {"dedupeKey": key, "status": "sending", "claimToken": token},
            {"$set": {"status": "pending", "lastError": error, "updatedAt": now()}, "$unset": {"leaseUntil": ""}},
        )

    def cancel(self, key: str, token: str, reason: str) -> None:
        """``cancelled``: never to be sent, since what it says stopped being true (while this claim holds it)."""
        at = now()
        self.collection.update_one(
            {"dedupeKey": key, "status": "sending", "claimToken": token},
            {"$set": {"status": "cancelled", "lastError": reason, "updatedAt": at}, "$unset": {"leaseUntil": ""}},
        )

    def mark_failed(self, key: str, token: str, error: str) -> None:
        """``failed`` for good, with the reason, while this claim holds it (a sent one stays ``sent``)."""
        at = now()
        self.collection.update_one(
            {"dedupeKey": key, "status": {"$ne": "sent"}, "claimToken": token},
            {
                "$set": {"status": "failed", "lastError": error, "failedAt": at, "updatedAt": at},
                "$unset": {"leaseUntil": ""},
            },
        )

    def pending_keys(self, older_than: timedelta, limit: int = 1000) -> list[str]:
        """Keys the sweep re-enqueues: ``pending`` and untouched for ``older_than``, or ``sending`` past its lease."""
        at = now()
        cursor = self.collection.find(
            {
                "$or": [
                    {"status": "pending", "updatedAt": {"$lte": at - older_than}},
                    {"status": "sending", "leaseUntil": {"$lte": at}},
                ]
            },
            projection={"dedupeKey": 1, "_id": 0},
            limit=limit,
        ).sort("updatedAt", ASCENDING)
        return [str(doc["dedupeKey"]) for doc in cursor]

    def get(self, key: str) -> Doc | None:
        """The stored notification (for ops and tests)."""
        return self.collection.find_one({"dedupeKey": key})
