"""``/ops/api/*``: the ops service over HTTP for ops people and their scripts.

Every route needs ``Authorization: Bearer $OPS_TOKEN`` (compared in constant time): 401 without
it. When ``OPS_TOKEN`` is unset the routes do not exist (404), so a deployment without ops
exposes nothing. Callers name themselves in ``X-Ops-Actor`` (else "token"), which the audit
records. Replay and purge are dry runs unless the body says ``"dry_run": false``. A real replay
at a ``rate`` (0.1 to 1,000 a second) is a background job: 202 with its id at once, its progress
at ``GET /ops/api/jobs/{jobId}``, so no request is held for as long as the replay takes.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.reads import MongoPaymentReads
from adapters.serialize import jsonable, payment_json
from ingress import parse
from ingress.errors import ApiError
from usecases import ops, reviews
from usecases.ports import FAILURE_STATES, Deps, FailureSelection, Operator, OpsDeps

T = TypeVar("T")
log = logging.getLogger(__name__)

#: The door the audit names for runs through the API.
VIA = "ops-api"
#: The header callers name themselves in, and the name when they do not.
ACTOR_HEADER = "X-Ops-Actor"
DEFAULT_ACTOR = "token"
#: Background jobs one ingress process runs at once; more are refused (409) until one ends.
MAX_JOBS = 4
#: Seconds the ingress waits, at shutdown, for its jobs to stop between two messages.
STOP_WAIT = 5.0
#: ``replaying``/``purging``: taken by a replay or purge that is running, or died (back to dead after its lease).
STATES = frozenset(FAILURE_STATES)
#: Seconds after which an unfinished inbox event counts as stuck, unless ``olderThan`` says otherwise.
STUCK_AFTER = 600
FILTERS = frozenset({"queue", "actor", "error", "since", "until", "state", "cursor", "limit"})


def parse_selection(fields: dict[str, Any], ids: Any = None) -> FailureSelection:
    """A selection from query parameters or a body's ``filter``, every value parsed at the edge."""
    if ids is not None and not isinstance(ids, list):
        raise parse.Invalid("ids must be a list of failure ids", "ids")
    for name, value in fields.items():
        if name not in FILTERS:
            raise parse.Invalid(f"unknown filter {name!r}; use {', '.join(sorted(FILTERS))}", name)
        if value is not None and not isinstance(value, str):
            raise parse.Invalid(f"{name} must be text", name)
    text = {k: v for k, v in fields.items() if v}
    return FailureSelection(
        ids=tuple(str(parse.object_id(i, "ids")) for i in ids or ()),
        queue=parse.name(text["queue"], "queue") if "queue" in text else None,
        actor=parse.name(text["actor"], "actor") if "actor" in text else None,
        error=parse.text(text.get("error"), "error"),
        since=parse.query_moment(text, "since"),
        until=parse.query_moment(text, "until"),
        state=parse.choice(text, "state", STATES),
    )


def parse_rate(value: object) -> float | None:
    """A replay's rate from a JSON body: absent, or a finite number from 0.1 to 1,000 per second."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise parse.Invalid("rate must be a number of messages per second", "rate")
    if not ops.MIN_RATE <= value <= ops.MAX_RATE:
        raise parse.Invalid(f"rate must be from {ops.MIN_RATE:g} to {ops.MAX_RATE:g} messages per second", "rate")
    return float(value)


def actor(request: Request) -> Operator:
    """The person an API call names in ``X-Ops-Actor`` (printable, at most 64 characters), else "token"."""
    given = request.headers.get(ACTOR_HEADER)
    name = DEFAULT_ACTOR if given is None else parse.name(given.strip(), ACTOR_HEADER)
    return Operator(name, VIA)


class Background:
    """The ops jobs this process runs, each in a daemon thread, at most ``MAX_JOBS`` at once.

    ``stop`` (at shutdown) asks every job to stop before its next message (their waits between
    messages end at once) and waits up to ``STOP_WAIT`` seconds: a stopped job is recorded
    ``stopped`` in ``ops_jobs`` and the audit. A process killed outright leaves its jobs
    ``running``; what they had not replayed is still ``dead`` and can be replayed again.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.slots = threading.BoundedSemaphore(MAX_JOBS)
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def reserve(self) -> bool:
        """Hold a place for a job; False when ``MAX_JOBS`` are running or the process is stopping."""
        return not self.stopping.is_set() and self.slots.acquire(blocking=False)

    def release(self) -> None:
        """Give back a place reserved for a job that was not started."""
        self.slots.release()

    def start(self, name: str, work: Callable[[], object]) -> None:
        """Run ``work`` in a new thread, in the place ``reserve`` held for it."""

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("ops job failed", extra={"job_id": name})
            finally:
                with self.lock:
                    self.threads.discard(threading.current_thread())
                self.slots.release()

        thread = threading.Thread(target=run, name=f"ops-job-{name}", daemon=True)
        with self.lock:
            self.threads.add(thread)
        thread.start()

    def stop(self, wait: float = STOP_WAIT) -> None:
        self.stopping.set()
        deadline = time.monotonic() + wait
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class OpsRoutes:
    token: str | None
    deps: OpsDeps
    core: Deps
    reads: MongoPaymentReads
    background: Background = field(default_factory=Background)

    def check(self, request: Request) -> None:
        if self.token is None:
            raise ApiError(404, "not_found", "not found")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "unauthorized", "the ops token is required", headers={"WWW-Authenticate": "Bearer"})

    async def run(self, request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.check(request)
        return await to_thread.run_sync(partial(fn, *args, **kwargs))

    async def queues(self, request: Request) -> Response:
        return JSONResponse(await self.run(request, self.deps.queues.depths))

    async def failures(self, request: Request) -> Response:
        self.check(request)
        params = dict(request.query_params)
        limit = parse.query_int(request.query_params, "limit", 50, 1, 500)
        after = params.get("cursor") or None
        if after is not None:
            parse.object_id(after, "cursor")
        items, cursor = await self.run(request, self.deps.failures.page, parse_selection(params), limit, after)
        return JSONResponse(jsonable({"items": items, "nextCursor": cursor}))

    async def failure(self, request: Request) -> Response:
        self.check(request)
        failure_id = str(parse.object_id(request.path_params["failure_id"], "failure_id"))
        found = await self.run(request, self.deps.failures.get, failure_id)
        if found is None:
            raise ApiError(404, "not_found", "no such failure")
        return JSONResponse(jsonable(found))

    async def _bulk(self, request: Request, action: str) -> Response:
        self.check(request)
        body = parse.json_object(await request.body())
        dry_run = body.get("dry_run", True)
        if not isinstance(dry_run, bool):
            raise parse.Invalid("dry_run must be true or false", "dry_run")
        filters = body.get("filter") or {}
        if not isinstance(filters, dict):
            raise parse.Invalid("filter must be an object", "filter")
        selection = parse_selection(filters, body.get("ids"))
        who = actor(request)
        if action == "replay":
            rate = parse_rate(body.get("rate"))
            if rate is not None and not dry_run:
                return await self._replay_job(request, selection, who, rate)
            result = await self.run(request, ops.replay, selection, self.deps, who=who, dry_run=dry_run, rate=rate)
        else:
            result = await self.run(request, ops.purge, selection, self.deps, who=who, dry_run=dry_run)
        return JSONResponse(jsonable(asdict(result)))

    async def _replay_job(self, request: Request, selection: FailureSelection, who: Operator, rate: float) -> Response:
        """A real replay at a rate, as a background job: 202 ``{jobId, count}`` once it is recorded and audited."""
        if not self.background.reserve():
            raise ApiError(409, "conflict", f"{MAX_JOBS} ops jobs are running here already; wait for one to end")
        deps = replace(self.deps, sleep=self.background.sleep)
        stop = self.background.stopping.is_set
        try:
            job = await self.run(request, ops.replay_job, selection, deps, who=who, rate=rate, stop=stop)
        except BaseException:
            self.background.release()
            raise
        self.background.start(job.id, job.work)
        location = f"/ops/api/jobs/{job.id}"
        return JSONResponse({"jobId": job.id, "count": job.count}, status_code=202, headers={"Location": location})

    async def job(self, request: Request) -> Response:
        self.check(request)
        job_id = str(parse.object_id(request.path_params["job_id"], "job_id"))
        found = await self.run(request, self.deps.runs.get, job_id)
        if found is None:
            raise ApiError(404, "not_found", "no such job")
        return JSONResponse(jsonable(found))

    async def replay(self, request: Request) -> Response:
        return await self._bulk(request, "replay")

    async def purge(self, request: Request) -> Response:
        return await self._bulk(request, "purge")

    async def reconcile(self, request: Request) -> Response:
        self.check(request)
        body = parse.json_object(await request.body() or b"{}")
        since = body.get("since")
        if since is not None and not isinstance(since, str):
            raise parse.Invalid("since must be an ISO 8601 date or time", "since")
        start = parse.query_moment({"since": since} if since else {}, "since")
        who = actor(request)
        now = datetime.now(UTC)
        report = await self.run(request, ops.reconcile_audited, self.core, self.deps, who=who, now=now, since=start)
        return JSONResponse(jsonable({"count": report.events_enqueued, **asdict(report)}))

    async def stuck(self, request: Request) -> Response:
        self.check(request)
        older = timedelta(seconds=parse.query_int(request.query_params, "olderThan", STUCK_AFTER, 0, 10**7))
        return JSONResponse(jsonable(await self.run(request, ops.stuck, self.deps, older)))

    async def requeue_stuck(self, request: Request) -> Response:
        self.check(request)
        older = timedelta(seconds=parse.query_int(request.query_params, "olderThan", STUCK_AFTER, 0, 10**7))
        who = actor(request)
        return JSONResponse(await self.run(request, ops.requeue_stuck, self.deps, who=who, older_than=older))

    async def reviews(self, request: Request) -> Response:
        docs = await self.run(request, self.reads.under_review)
        return JSONResponse({"items": [payment_json(doc, "admin") for doc in docs]})

    async def review(self, request: Request) -> Response:
        self.check(request)
        intent_id = parse.intent_id(request.path_params["payment_id"], "paymentId")
        action = request.path_params["action"]
        now = datetime.now(UTC)
        who = actor(request)
        outcome = await self.run(request, reviews.act, intent_id, action, who, self.core, self.deps.audit, now=now)
        return JSONResponse({"paymentId": intent_id, "action": action, "outcome": outcome})

    async def replay_event(self, request: Request) -> Response:
        self.check(request)
        event_id = parse.stripe_id(request.path_params["event_id"], "event_id", "evt")
        if not await self.run(request, ops.replay_event, event_id, self.deps, who=actor(request)):
            raise ApiError(404, "not_found", "no stored event with that id")
        return JSONResponse({"replayed": event_id}, status_code=202)
