"""A payment's whole story: ``/ops/api/payments`` (search, one story) and the dashboard's search
results and payment page. Same guards as the other ops doors: the API's bearer token
(``OpsRoutes.check``), the dashboard's session; nothing is decided here (``usecases.story``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.story import search_json, story_json
from ingress import parse
from ingress.dashboard import Dashboard, Form, Session
from ingress.errors import ApiError
from ingress.ops import OpsRoutes
from usecases import reviews, story
from usecases.story import BadQuery, StoryDeps

#: Codes whose fix is the reconcile button.
RECONCILE = frozenset({"webhook_not_received", "stripe_disagrees"})


def _query(request: Request) -> str:
    q = request.query_params.get("q", "").strip()
    if not q:
        raise parse.Invalid("q is required: a pi_… id, a payment's or customer's id, or a customer email", "q")
    return q


@dataclass
class StoryRoutes:
    api: OpsRoutes
    dashboard: Dashboard
    deps: StoryDeps
    routes: list[Route] = field(init=False)

    def __post_init__(self) -> None:
        page = self.dashboard.page  # the dashboard's session, CSRF and error plumbing
        self.routes = [
            Route("/ops/api/payments", self.search, methods=["GET"]),
            Route("/ops/api/payments/{payment_id}", self.one, methods=["GET"]),
            Route("/ops/payments", page(self.results), methods=["GET"]),
            Route("/ops/payments/{payment_id}", page(self.page), methods=["GET"]),
        ]

    def _search(self, q: str) -> list[dict[str, Any]]:
        try:
            return search_json(story.search(q, self.deps.reads))
        except BadQuery as bad:
            raise parse.Invalid(str(bad), "q") from None

    def _story(self, key: str) -> dict[str, Any] | None:
        found = story.story(key, self.deps) if story.is_key(key) else None
        return story_json(found) if found is not None else None

    async def search(self, request: Request) -> Response:
        self.api.check(request)
        return JSONResponse({"items": await self.api.run(request, self._search, _query(request))})

    async def one(self, request: Request) -> Response:
        found = await self.api.run(request, self._story, request.path_params["payment_id"])
        if found is None:
            raise ApiError(404, "not_found", "no payment with that pi_… id or _id")
        return JSONResponse(found)

    async def results(self, request: Request, session: Session | None, form: Form) -> Response:
        q = request.query_params.get("q", "").strip()
        rows, problem = [], None
        if q:
            try:
                rows = await self.dashboard.call(self._search, q)
            except ApiError as refused:
                problem = refused.message
        return self.dashboard.render("payments.html", session, q=q, rows=rows, problem=problem)

    async def page(self, request: Request, session: Session | None, form: Form) -> Response:
        found = await self.dashboard.call(self._story, request.path_params["payment_id"])
        if found is None:
            return self.dashboard.problem(404, "No payment with that pi_… id or _id.", session)
        return self.dashboard.render(
            "payment.html",
            session,
            story=found,
            reconcile=RECONCILE,
            review_actions=reviews.ACTIONS,
            now=datetime.now(UTC),
        )


def story_routes(api: OpsRoutes, dashboard: Dashboard, deps: StoryDeps) -> list[Route]:
    return StoryRoutes(api, dashboard, deps).routes
