"""``/ops/api/*``: the ops service over HTTP for ops people and their scripts (CONTRACT §3 Ops).

Every route needs ``Authorization: Bearer $OPS_TOKEN`` (compared in constant time): 401 without
it. When ``OPS_TOKEN`` is unset the routes do not exist (404), so a deployment without ops
exposes nothing. Replay and purge are dry runs unless the body says ``"dry_run": false``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.reads import MongoPaymentReads
from ingress import parse
from ingress.errors import ApiError
from ingress.serialize import jsonable, payment_json
from usecases import ops, reviews
from usecases.ops import FailureSelection, OpsDeps
from usecases.ports import Deps
from usecases.reconcile import reconcile

T = TypeVar("T")

#: Who the audit names for runs through the API.
WHO = "ops-api"
STATES = frozenset({"dead", "replayed", "purged"})
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


@dataclass
class OpsRoutes:
    token: str | None
    deps: OpsDeps
    core: Deps
    reads: MongoPaymentReads

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
        if action == "replay":
            rate = body.get("rate")
            if rate is not None and (
                isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1000
            ):
                raise parse.Invalid("rate must be a number of messages per second, up to 1000", "rate")
            result = await self.run(request, ops.replay, selection, self.deps, who=WHO, dry_run=dry_run, rate=rate)
        else:
            result = await self.run(request, ops.purge, selection, self.deps, who=WHO, dry_run=dry_run)
        return JSONResponse(jsonable(asdict(result)))

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
        report = await self.run(request, reconcile, self.core, now=datetime.now(UTC), since=start)
        self.deps.audit.record(WHO, "reconcile", {"since": report.since}, report.events_enqueued)
        return JSONResponse(jsonable({"count": report.events_enqueued, **asdict(report)}))

    async def stuck(self, request: Request) -> Response:
        self.check(request)
        older = timedelta(seconds=parse.query_int(request.query_params, "olderThan", STUCK_AFTER, 0, 10**7))
        return JSONResponse(jsonable(await self.run(request, ops.stuck, self.deps, older)))

    async def requeue_stuck(self, request: Request) -> Response:
        self.check(request)
        older = timedelta(seconds=parse.query_int(request.query_params, "olderThan", STUCK_AFTER, 0, 10**7))
        return JSONResponse(await self.run(request, ops.requeue_stuck, self.deps, who=WHO, older_than=older))

    async def reviews(self, request: Request) -> Response:
        docs = await self.run(request, self.reads.under_review)
        return JSONResponse({"items": [payment_json(doc, "admin") for doc in docs]})

    async def review(self, request: Request) -> Response:
        self.check(request)
        intent_id = parse.intent_id(request.path_params["payment_id"], "paymentId")
        action = request.path_params["action"]
        now = datetime.now(UTC)
        outcome = await self.run(request, reviews.act, intent_id, action, WHO, self.core, self.deps.audit, now=now)
        return JSONResponse({"paymentId": intent_id, "action": action, "outcome": outcome})

    async def replay_event(self, request: Request) -> Response:
        self.check(request)
        event_id = parse.stripe_id(request.path_params["event_id"], "event_id", "evt")
        if not await self.run(request, ops.replay_event, event_id, self.deps, who=WHO):
            raise ApiError(404, "not_found", "no stored event with that id")
        return JSONResponse({"replayed": event_id}, status_code=202)
