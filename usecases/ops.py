"""The ops service: what the ``payments-ops`` CLI, the ``/ops`` API and the dashboard all call.

Failed jobs are the project's own records (``job_failures``), which outlive Dramatiq's 7-day dead
letters. Replay and purge are dry runs unless asked otherwise. A replay enqueues a fresh copy of
the stored message first (retries and age reset, signed again) and marks the record after, so a
replay killed half-way duplicates rather than loses: every actor is idempotent, so replaying work
already done changes nothing. A stored message the project never signed (a forgery that was
dead-lettered for it) is never replayed: re-signing it would make it trusted. Replay and purge
also remove Dramatiq's dead letter of the message.

Each record is claimed before anything is done to it (one conditional write, ``dead`` to
``replaying`` or ``purging``), so two operators, or a replay racing a purge, act on it once: the
other run skips it. A claim a crash left behind is taken back after its lease. A purge also
finishes the record's Stripe event in the inbox (``purged``), so reconcile, the stale-work sweep
and the stuck-work requeue never queue the poison event again.

Every action names the person who took it (``Operator``: a name, and the door it came through).
Every real run is audited twice, append-only: a ``started`` record before it touches anything
(what it selected) and a ``finished`` (or ``stopped``, ``failed``) record after (how many it did),
so a run that died half-way still shows who began it. A replay's rate is bounded (``MIN_RATE`` to
``MAX_RATE`` per second): a tiny one would sleep for years between two messages, or overflow.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from domain.errors import RequestRefused
from usecases.ports import PURGING, REPLAYING, Audit, AuditRun, Deps, FailureSelection, Operator, OpsDeps, StoredFailure
from usecases.reconcile import ReconcileReport, reconcile

T = TypeVar("T")

#: How many failures a dry run shows.
SAMPLE = 5
#: Bounds of a replay's rate, in messages per second: below a tenth a run of a few messages takes
#: minutes between each; above a thousand the rate limits nothing, an unlimited replay being slower
#: (docs/performance.md#figures-from-code-comments).
MIN_RATE = 0.1
MAX_RATE = 1000.0
#: Seconds between two progress writes of a background job (and one at its end).
PROGRESS_EVERY = 1.0


def check_rate(rate: object) -> float | None:
    """A replay's rate: None (as fast as it goes) or a finite number from ``MIN_RATE`` to ``MAX_RATE``.

    The doors parse it first (422, exit 2); this is the last line, before any work.
    """
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        raise RequestRefused("validation_error", "rate must be a number of messages per second", "rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise RequestRefused(
            "validation_error", f"rate must be from {MIN_RATE:g} to {MAX_RATE:g} messages per second", "rate"
        )
    return float(rate)


@dataclass(frozen=True)
class BulkResult:
    """What a replay or purge did (or, in a dry run, would do)."""

    count: int
    dry_run: bool
    sample: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0
    refused: int = 0
    #: Taken by another run (or done by it) between the selection and this run's claim.
    skipped: int = 0


def _dead(selection: FailureSelection) -> FailureSelection:
    """Replay and purge act on dead failures only (a replayed or purged one is done)."""
    return replace(selection, state="dead")


def _sample(rows: list[StoredFailure], deps: OpsDeps) -> list[dict[str, Any]]:
    return [view for row in rows[:SAMPLE] if (view := deps.failures.get(row.id))]


def replay(
    selection: FailureSelection,
    deps: OpsDeps,
    *,
    who: Operator,
    dry_run: bool = True,
    rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> BulkResult:
    """Enqueue a fresh copy of each dead failure selected, at most ``rate`` per second, then mark it ``replayed``."""
    rate = check_rate(rate)
    rows = deps.failures.select(_dead(selection))
    if dry_run:
        return BulkResult(len(rows), True, _sample(rows, deps))
    run = deps.audit.start(who, "replay", _described(selection, rate=rate), len(rows))
    return _replay_rows(rows, run, deps, who=who, rate=rate, progress=progress, stop=stop)


def _replay_rows(
    rows: list[StoredFailure],
    run: AuditRun,
    deps: OpsDeps,
    *,
    who: Operator,
    rate: float | None,
    progress: Callable[[int, int], None] | None,
    stop: Callable[[], bool] | None,
) -> BulkResult:
    """The real replay of ``rows``, its start audited already; its end is audited whatever happens.

    Each record is claimed first: one another run claimed (or finished) since the selection is
    skipped, so it is enqueued once however many replays and purges race over it.
    """
    done = refused = skipped = 0
    state = "failed"
    try:
        for index, row in enumerate(rows, start=1):
            if stop and stop():
                break
            enqueued = False
            if not deps.queues.authentic(row.message):
                refused += 1
            elif (token := deps.failures.claim(row.id, REPLAYING, who.name)) is None:
                skipped += 1
            else:
                _holding(deps, row, token, functools.partial(deps.queues.enqueue_copy, row.message))
                deps.failures.mark(row.id, "replayed", who.name, token)
                if row.redis_message_id:  # the fresh copy replaces Dramatiq's dead letter
                    deps.queues.drop_dead_letter(row.queue, row.redis_message_id)
                done += 1
                enqueued = True
            if progress:
                progress(index, len(rows))
            if rate and enqueued and index < len(rows):  # pace what is enqueued; no wait after the last
                deps.sleep(1 / rate)
        state = "stopped" if done + refused + skipped < len(rows) else "finished"
    except KeyboardInterrupt:
        state = "stopped"
        raise
    finally:
        run.finish(done, state)
    return BulkResult(len(rows), False, done=done, refused=refused, skipped=skipped)


def _holding(deps: OpsDeps, row: StoredFailure, token: str, action: Callable[[], object]) -> None:
    """Run ``action`` on a claimed record; if it fails, give the record back (``dead``) for the next run."""
    try:
        action()
    except BaseException:
        deps.failures.release(row.id, token)
        raise


@dataclass(frozen=True)
class ReplayJob:
    """A replay begun as a background job: its id and count, and ``work`` for a thread to run."""

    id: str
    count: int
    work: Callable[[], BulkResult]


def replay_job(
    selection: FailureSelection,
    deps: OpsDeps,
    *,
    who: Operator,
    rate: float | None,
    stop: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
) -> ReplayJob:
    """Select, record the job and audit its start now; ``work`` replays, writing progress to the job.

    If the process dies during ``work``, the job stays ``running`` with its last progress and
    the audit has no end record; the failures not yet replayed are still ``dead``, so the same
    replay can simply be asked for again (it picks up only those).
    """
    rate = check_rate(rate)
    rows = deps.failures.select(_dead(selection))
    described = _described(selection, rate=rate)
    job_id = deps.runs.create(who, "replay", described, len(rows))
    run = deps.audit.start(who, "replay", {**described, "jobId": job_id}, len(rows))
    handled, written = 0, clock()

    def progress(count: int, total: int) -> None:
        nonlocal handled, written
        handled = count
        if clock() - written >= PROGRESS_EVERY:
            written = clock()
            deps.runs.update(job_id, handled)

    def work() -> BulkResult:
        try:
            result = _replay_rows(rows, run, deps, who=who, rate=rate, progress=progress, stop=stop)
        except BaseException as error:
            deps.runs.update(job_id, handled, "failed", {"error": type(error).__name__})
            raise
        through = result.done + result.refused + result.skipped
        state = "finished" if through == result.count else "stopped"
        outcome = {"replayed": result.done, "refused": result.refused, "skipped": result.skipped}
        deps.runs.update(job_id, through, state, outcome)
        return result

    return ReplayJob(job_id, len(rows), work)


def purge(selection: FailureSelection, deps: OpsDeps, *, who: Operator, dry_run: bool = True) -> BulkResult:
    """Claim each dead failure selected, remove Dramatiq's dead letter of it, finish its event, mark it ``purged``.

    A record another run claimed (or finished) since the selection is skipped. Its Stripe event
    is finished in the inbox, so nothing that queues unfinished events brings it back.
    """
    rows = deps.failures.select(_dead(selection))
    if dry_run:
        return BulkResult(len(rows), True, _sample(rows, deps))

    def work() -> tuple[BulkResult, int]:
        done = skipped = 0
        for row in rows:
            token = deps.failures.claim(row.id, PURGING, who.name)
            if token is None:
                skipped += 1
                continue

            def drop(row: StoredFailure = row) -> None:
                if row.redis_message_id:
                    deps.queues.drop_dead_letter(row.queue, row.redis_message_id)
                if row.event_id:
                    deps.events.purge(row.event_id, who.name)

            _holding(deps, row, token, drop)
            deps.failures.mark(row.id, "purged", who.name, token)
            done += 1
        return BulkResult(len(rows), False, done=done, skipped=skipped), done

    return audited(deps.audit, who, "purge", _described(selection), len(rows), work)


def audited(
    audit: Audit,
    who: Operator,
    action: str,
    selection: Mapping[str, Any],
    total: int,
    work: Callable[[], tuple[T, int]],
    detail: Callable[[T], Mapping[str, Any]] | None = None,
) -> T:
    """Run ``work`` (which returns its result and how many it did) between a start and an end record."""
    run = audit.start(who, action, selection, total)
    try:
        result, count = work()
    except BaseException:
        run.finish(0, "failed")
        raise
    run.finish(count, "finished", detail(result) if detail else None)
    return result


def reconcile_audited(
    core: Deps, deps: OpsDeps, *, who: Operator, now: datetime, since: datetime | None = None
) -> ReconcileReport:
    """Reconcile with Stripe (it can take a while) between a start and an end record."""

    def work() -> tuple[ReconcileReport, int]:
        report = reconcile(core, now=now, since=since)
        return report, report.events_enqueued

    asked = {"since": since} if since else {}
    return audited(deps.audit, who, "reconcile", asked, 0, work, lambda report: {"since": report.since})


def export(selection: FailureSelection, deps: OpsDeps) -> Iterator[dict[str, Any]]:
    """Every failure selected, whole, oldest first (for JSON lines)."""
    for row in deps.failures.select(selection):
        view = deps.failures.get(row.id)
        if view is not None:
            yield {**view, "encoded": row.message}


def replay_event(event_id: str, deps: OpsDeps, *, who: Operator) -> bool:
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


def requeue_stuck(deps: OpsDeps, *, who: Operator, older_than: timedelta) -> dict[str, int]:
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
