"""The ops service: what the ``payments-ops`` CLI, the ``/ops`` API and the dashboard all call.

Failed jobs are the project's own records (``job_failures``), which outlive Dramatiq's 7-day dead
letters. Replay and purge are dry runs unless asked otherwise. A replay enqueues a fresh copy of
the stored message first (retries and age reset, signed again) and marks the record after, so a
replay killed half-way duplicates rather than loses: every actor is idempotent, so replaying work
already done changes nothing. A stored message the project never signed (a forgery that was
dead-lettered for it) is never replayed: re-signing it would make it trusted. Replay and purge
also remove Dramatiq's dead letter of the message. Every real run is audited (who, when, the
selection, how many).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

#: How many failures a dry run shows.
SAMPLE = 5


@dataclass(frozen=True)
class FailureSelection:
    """Which failures: by ids, or by queue, actor, error text, last-failure time range and state."""

    ids: tuple[str, ...] = ()
    queue: str | None = None
    actor: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = None


@dataclass(frozen=True)
class StoredFailure:
    id: str
    queue: str
    redis_message_id: str | None
    message: str  # Dramatiq's encoded message


@dataclass(frozen=True)
class BulkResult:
    """What a replay or purge did (or, in a dry run, would do)."""

    count: int
    dry_run: bool
    sample: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0
    refused: int = 0


class FailureStore(Protocol):
    def page(
        self, selection: FailureSelection, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def get(self, failure_id: str) -> dict[str, Any] | None: ...

    def select(self, selection: FailureSelection) -> list[StoredFailure]: ...

    def mark(self, failure_id: str, state: str, by: str) -> None: ...


class QueueAdmin(Protocol):
    def depths(self) -> dict[str, dict[str, int]]: ...

    def authentic(self, encoded: str) -> bool:
        """Whether a stored message carries the project's valid signature."""

    def enqueue_copy(self, encoded: str) -> None:
        """Enqueue a fresh copy of a stored message: retries and age reset, signed again."""

    def drop_dead_letter(self, queue: str, redis_message_id: str) -> None: ...

    def dead_workers(self) -> dict[str, int]:
        """Worker (broker) ids whose heartbeat stopped, with how many messages each still holds."""

    def requeue_dead_workers(self) -> dict[str, int]:
        """Give those messages back to their queues; returns what each dead worker held."""


class StoredEvents(Protocol):
    def payload(self, event_id: str) -> dict[str, Any] | None:
        """The Stripe event as the inbox stored it (without secrets), if it is there."""

    def unfinished(self, older_than: timedelta) -> list[dict[str, Any]]:
        """Events left ``received`` or ``failed`` since longer than ``older_than``: id, type, status, times."""


class EventJobs(Protocol):
    def enqueue_event(self, payload: Mapping[str, Any]) -> None: ...


class Audit(Protocol):
    def record(self, who: str, action: str, selection: Mapping[str, Any], count: int) -> None: ...


@dataclass(frozen=True)
class OpsDeps:
    failures: FailureStore
    queues: QueueAdmin
    audit: Audit
    events: StoredEvents
    jobs: EventJobs
    sleep: Callable[[float], None] = time.sleep


def _dead(selection: FailureSelection) -> FailureSelection:
    """Replay and purge act on dead failures only (a replayed or purged one is done)."""
    return replace(selection, state="dead")


def _sample(rows: list[StoredFailure], deps: OpsDeps) -> list[dict[str, Any]]:
    return [view for row in rows[:SAMPLE] if (view := deps.failures.get(row.id))]


def replay(
    selection: FailureSelection,
    deps: OpsDeps,
    *,
    who: str,
    dry_run: bool = True,
    rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BulkResult:
    """Enqueue a fresh copy of each dead failure selected, at most ``rate`` per second, then mark it ``replayed``."""
    rows = deps.failures.select(_dead(selection))
    if dry_run:
        return BulkResult(len(rows), True, _sample(rows, deps))
    done = refused = 0
    for row in rows:
        if not deps.queues.authentic(row.message):
            refused += 1
            continue
        deps.queues.enqueue_copy(row.message)
        deps.failures.mark(row.id, "replayed", who)
        if row.redis_message_id:  # the fresh copy replaces Dramatiq's dead letter
            deps.queues.drop_dead_letter(row.queue, row.redis_message_id)
        done += 1
        if progress:
            progress(done, len(rows))
        if rate:
            deps.sleep(1 / rate)
    deps.audit.record(who, "replay", _described(selection, rate=rate), done)
    return BulkResult(len(rows), False, done=done, refused=refused)


def purge(selection: FailureSelection, deps: OpsDeps, *, who: str, dry_run: bool = True) -> BulkResult:
    """Mark each dead failure selected ``purged`` and remove Dramatiq's dead letter of it."""
    rows = deps.failures.select(_dead(selection))
    if dry_run:
        return BulkResult(len(rows), True, _sample(rows, deps))
    for row in rows:
        if row.redis_message_id:
            deps.queues.drop_dead_letter(row.queue, row.redis_message_id)
        deps.failures.mark(row.id, "purged", who)
    deps.audit.record(who, "purge", _described(selection), len(rows))
    return BulkResult(len(rows), False, done=len(rows))


def export(selection: FailureSelection, deps: OpsDeps) -> Iterator[dict[str, Any]]:
    """Every failure selected, whole, oldest first (for JSON lines)."""
    for row in deps.failures.select(selection):
        view = deps.failures.get(row.id)
        if view is not None:
            yield {**view, "encoded": row.message}


def replay_event(event_id: str, deps: OpsDeps, *, who: str) -> bool:
    """Process a stored Stripe event again (the inbox makes it a no-op if it was processed); False if unknown."""
    payload = deps.events.payload(event_id)
    if payload is None:
        return False
    deps.jobs.enqueue_event(payload)
    deps.audit.record(who, "replay_event", {"eventId": event_id}, 1)
    return True


def stuck(deps: OpsDeps, older_than: timedelta) -> dict[str, Any]:
    """Work nobody is doing: messages held by dead workers, inbox events left unfinished."""
    return {"deadWorkers": deps.queues.dead_workers(), "unfinishedEvents": deps.events.unfinished(older_than)}


def requeue_stuck(deps: OpsDeps, *, who: str, older_than: timedelta) -> dict[str, int]:
    """Give dead workers' messages back and queue every unfinished inbox event again (failed ones too)."""
    held = deps.queues.requeue_dead_workers()
    unfinished = deps.events.unfinished(older_than)
    for event in unfinished:
        payload = deps.events.payload(str(event["id"]))
        if payload is not None:
            deps.jobs.enqueue_event(payload)
    result = {"messagesRequeued": sum(held.values()), "eventsRequeued": len(unfinished)}
    deps.audit.record(who, "requeue_stuck", {"olderThanSeconds": older_than.total_seconds()}, sum(result.values()))
    return result


def _described(selection: FailureSelection, **extra: Any) -> dict[str, Any]:
    return {k: v for k, v in {**asdict(selection), **extra}.items() if v not in (None, ())}
