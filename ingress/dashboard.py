"""``/ops``: the ops dashboard, server-rendered HTML over the same ops service as ``/ops/api``.

Logging in takes the person's name and ``OPS_TOKEN``. The session is kept on the server
(``adapters.ops_sessions``: the cookie holds a random id, 8 hours; ``HttpOnly``,
``SameSite=Strict``, ``Path=/ops``, ``Secure`` over https), so logging out ends it: a copy of the
cookie kept after logout opens nothing. Failed logins are throttled per client address
(``ingress.login_throttle``: 429 with ``Retry-After`` after 5 a minute). Every form carries the
session's CSRF token, and a POST without it is refused (403); the login form's own CSRF token
travels in a short signed cookie, as nothing is stored for a visitor who has not logged in.
When ``OPS_TOKEN`` is unset every page is 404, as the API's routes are. Nothing is decided here:
each button calls the function the API calls (``usecases.ops``, ``usecases.reviews``), in the
name of the person logged in, and replay and purge show their dry run for confirmation first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlencode

from anyio import to_thread
from pymongo import DESCENDING
from pymongo.collection import Collection
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from adapters import templating
from adapters.mongo import Doc
from adapters.ops_sessions import OpsSession
from adapters.serialize import payment_json
from domain.errors import RequestRefused
from ingress import parse
from ingress.errors import REFUSAL_STATUS, ApiError, error
from ingress.login_throttle import LoginThrottle
from ingress.ops import OpsRoutes, parse_selection
from usecases import ops, reviews
from usecases.ports import Operator

T = TypeVar("T")
log = logging.getLogger(__name__)

#: The door the audit names for actions taken in the dashboard.
VIA = "ops-dashboard"
COOKIE = "ops_session"
SESSION_SECONDS = 8 * 3600
#: Life of the login form's signed cookie (it carries only the form's CSRF token).
LOGIN_FORM_SECONDS = 3600
FAILURES_PER_PAGE = 50
RECENT_EVENTS = 20
#: The filter fields of the failures list and of a replay or purge of "all matching".
FILTER_FIELDS = ("queue", "actor", "error")
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: What a redirect after an action says; the count is the only thing taken from the query.
NOTICES = {
    "replay": "Replayed {count} failure(s).",
    "purge": "Purged {count} failure(s).",
    "reconcile": "Reconciled with Stripe: {count} event(s) queued.",
    "event": "The event was queued again.",
    "activate": "The payment was activated.",
    "refund": "A full refund was requested.",
    "dismiss": "The review was dismissed.",
}


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else ""


def _moment(text: str | None) -> str:
    """An ISO 8601 time of a JSON answer as people read it (UTC, to the second)."""
    return (text or "")[:19].replace("T", " ")


TEMPLATES = Jinja2Templates(env=templating.dashboard_environment())  # templates/ops; autoescapes .html
TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["moment"] = _moment
TEMPLATES.env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    csrf: str
    #: The person logged in; None for the login form's session, which exists for its CSRF token only.
    who: str | None = None
    #: The server-side session's id (the cookie), for logout.
    id: str | None = None

    @property
    def auth(self) -> bool:
        return self.who is not None


class SessionStore(Protocol):
    def create(self, who: str, ttl: timedelta, address: str | None) -> tuple[str, OpsSession]: ...

    def find(self, session_id: str) -> OpsSession | None: ...

    def delete(self, session_id: str) -> None: ...


@dataclass(frozen=True)
class LoginCookies:
    """The login form's cookie: its CSRF token and expiry, signed with HMAC-SHA256 under a key derived
    from the ops token. It is never a logged-in session: those are only ever looked up on the server."""

    token: str
    clock: Callable[[], float] = time.time

    @property
    def key(self) -> bytes:
        return hmac.new(self.token.encode(), b"dashboard-login-form", hashlib.sha256).digest()

    def issue(self) -> tuple[Session, str]:
        csrf = secrets.token_urlsafe(32)
        body = _b64(json.dumps({"exp": int(self.clock()) + LOGIN_FORM_SECONDS, "csrf": csrf}).encode())
        return Session(csrf), f"{body}.{self._sign(body)}"

    def read(self, cookie: str) -> Session | None:
        """The login form's session a cookie holds, if it is signed with our key and not expired."""
        body, _, signature = cookie.partition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            data = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict):
            return None
        exp, csrf = data.get("exp"), data.get("csrf")
        if not isinstance(exp, int) or not isinstance(csrf, str):
            return None
        return Session(csrf) if exp > self.clock() else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())


Form = dict[str, list[str]]
Handler = Callable[[Request, Session | None, Form], Awaitable[Response]]


def _first(form: Form, name: str) -> str:
    values = form.get(name) or [""]
    return values[0]


async def _form(request: Request) -> Form:
    """An ``application/x-www-form-urlencoded`` body (BodyLimit caps its size)."""
    try:
        text = (await request.body()).decode()
        return parse_qs(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError:  # not UTF-8, or too many fields
        raise ApiError(400, "bad_request", "the form could not be read") from None


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _set_cookie(response: Response, request: Request, value: str, max_age: int = SESSION_SECONDS) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path="/ops",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def _operator(session: Session | None) -> Operator:
    """The person logged in (every action page is behind a logged-in session)."""
    assert session is not None and session.who is not None
    return Operator(session.who, VIA)


def _see(path: str, **query: Any) -> RedirectResponse:
    """A 303 to ``path`` (after a POST, the browser GETs it)."""
    target = f"{path}?{urlencode(query)}" if query else path
    return RedirectResponse(target, status_code=303, headers=HEADERS)


@dataclass
class Dashboard:
    """The ``/ops`` pages; ``api`` is the ``OpsRoutes`` of the same app, whose ops service they call."""

    api: OpsRoutes
    events: Collection[Doc]
    sessions: SessionStore
    throttle: LoginThrottle
    clock: Callable[[], float] = time.time
    routes: list[Route] = field(init=False)

    def __post_init__(self) -> None:
        page, action = self._page, partial(self._page, post=True)
        self.routes = [
            Route("/ops", page(self.index), methods=["GET"]),
            Route("/ops/login", page(self.login_form, open_=True), methods=["GET"]),
            Route("/ops/login", action(self.login, open_=True), methods=["POST"]),
            Route("/ops/logout", action(self.logout), methods=["POST"]),
            Route("/ops/failures/replay", action(partial(self.bulk, "replay")), methods=["POST"]),
            Route("/ops/failures/purge", action(partial(self.bulk, "purge")), methods=["POST"]),
            Route("/ops/failures/{failure_id}", page(self.failure), methods=["GET"]),
            Route("/ops/events/{event_id}/replay", action(self.replay_event), methods=["POST"]),
            Route("/ops/reconcile", action(self.reconcile), methods=["POST"]),
            Route("/ops/reviews/{payment_id}/{action:str}", action(self.review), methods=["POST"]),
        ]

    # -- plumbing ---------------------------------------------------------------------------------

    def render(self, name: str, session: Session | None, code: int = 200, **context: Any) -> HTMLResponse:
        authed = session is not None and session.auth
        csrf, who = (session.csrf, session.who) if session else ("", None)
        html = TEMPLATES.get_template(name).render(csrf=csrf, authed=authed, who=who, **context)
        return HTMLResponse(html, status_code=code, headers=HEADERS)

    def problem(self, status: int, message: str, session: Session | None = None) -> HTMLResponse:
        return self.render("error.html", session, status, status=status, message=message)

    def _page(
        self, handler: Handler, *, post: bool = False, open_: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page: 404 without a token, the session (or 401/redirect), the CSRF check on POSTs, errors as HTML."""

        async def endpoint(request: Request) -> Response:
            if self.api.token is None:  # no ops: answered as any unknown path is
                return error(404, "not_found", "Not Found")
            session = await self.session_of(request)
            authed = session is not None and session.auth
            if not authed and not open_:
                if not post and _wants_html(request):
                    return _see("/ops/login")
                return self.problem(401, "Log in with the ops token first.")
            form: Form = {}
            if post:
                form = await _form(request)
                given = _first(form, "csrf").encode()
                if session is None or not hmac.compare_digest(given, session.csrf.encode()):
                    log.warning("dashboard form without a valid CSRF token", extra={"path": request.url.path})
                    return self.problem(403, "This form has expired or did not come from this dashboard.", session)
            try:
                return await handler(request, session, form)
            except ApiError as refused:
                return self.problem(refused.status, refused.message, session)
            except RequestRefused as refusal:
                return self.problem(REFUSAL_STATUS.get(refusal.code, 422), refusal.message, session)

        return endpoint

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page defined in another module, behind the same login and error handling as these."""
        return self._page(handler)

    async def session_of(self, request: Request) -> Session | None:
        """The request's session: a logged-in one from the server, or the login form's from its signed cookie."""
        assert self.api.token is not None
        cookie = request.cookies.get(COOKIE) or ""
        if "." in cookie:
            return LoginCookies(self.api.token, self.clock).read(cookie)
        found = await self.call(self.sessions.find, cookie) if cookie else None
        return Session(found.csrf, found.who, cookie) if found else None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await to_thread.run_sync(partial(fn, *args, **kwargs))

    def recent_events(self) -> list[Doc]:
        """The newest Stripe events of the inbox."""
        fields = {"type": 1, "status": 1, "attempts": 1, "receivedAt": 1, "error": 1}
        return list(self.events.find({}, fields).sort("receivedAt", DESCENDING).limit(RECENT_EVENTS))

    # -- login ------------------------------------------------------------------------------------

    async def login_form(self, request: Request, session: Session | None, form: Form) -> Response:
        if session is not None and session.auth:
            return _see("/ops")
        assert self.api.token is not None
        if session is None:
            session, cookie = LoginCookies(self.api.token, self.clock).issue()
            response = self.render("login.html", session)
            _set_cookie(response, request, cookie, LOGIN_FORM_SECONDS)
            return response
        return self.render("login.html", session)

    async def login(self, request: Request, session: Session | None, form: Form) -> Response:
        """The person's name and the ops token; refused while the address has failed too often."""
        assert self.api.token is not None
        address = _address(request)
        wait = await self.call(self.throttle.wait, address)
        if wait:
            log.warning("dashboard login throttled", extra={"address": address})
            message = f"Too many failed logins from your address: try again in {wait} seconds."
            headers = {"Retry-After": str(wait)}
            if not _wants_html(request):
                return error(429, "rate_limited", message, headers={**HEADERS, **headers})
            page = self.render("login.html", session, 429, error=message)
            page.headers.update(headers)
            return page
        name = _first(form, "name").strip()
        if not parse.NAME.fullmatch(name):
            return self.render("login.html", session, 422, error="Give your name (at most 64 characters).")
        if not hmac.compare_digest(_first(form, "token").strip().encode(), self.api.token.encode()):
            await self.call(self.throttle.failed, address)
            log.warning("dashboard login refused", extra={"address": address})
            return self.render("login.html", session, 401, error="That is not the ops token.", person=name)
        await self.call(self.throttle.succeeded, address)
        session_id, _ = await self.call(self.sessions.create, name, timedelta(seconds=SESSION_SECONDS), address)
        log.info("dashboard login", extra={"who": name, "address": address})
        response = _see("/ops")
        _set_cookie(response, request, session_id)
        return response

    async def logout(self, request: Request, session: Session | None, form: Form) -> Response:
        """Ends the session on the server, so the cookie is worthless even if a copy was kept."""
        if session is not None and session.id is not None:
            await self.call(self.sessions.delete, session.id)
        response = _see("/ops/login")
        response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict")
        return response

    # -- pages ------------------------------------------------------------------------------------

    async def index(self, request: Request, session: Session | None, form: Form) -> Response:
        query = request.query_params
        filters = {name: query.get(name, "") for name in FILTER_FIELDS}
        state = query.get("state", "dead")  # the dead ones by default; "" is every state
        selection = parse_selection({**filters, "state": state})
        cursor = query.get("cursor") or None
        if cursor is not None:
            parse.object_id(cursor, "cursor")
        deps = self.api.deps

        def load() -> dict[str, Any]:
            items, more = deps.failures.page(selection, FAILURES_PER_PAGE, cursor)
            return {
                "queues": deps.queues.depths(),
                "failures": items,
                "next_cursor": more,
                "reviews": [payment_json(doc, "admin") for doc in self.api.reads.under_review()],
                "given_up": self.api.reads.given_up_refunds(),
                "events": self.recent_events(),
            }

        notice = NOTICES.get(query.get("done", ""))
        count = query.get("count", "0")
        notice = notice.format(count=int(count) if count.isdigit() and len(count) < 10 else 0) if notice else None
        refused, skipped = query.get("refused", ""), query.get("skipped", "")
        return self.render(
            "index.html",
            session,
            **await self.call(load),
            filters=filters,
            state=state,
            notice=notice,
            refused=int(refused) if refused.isdigit() and len(refused) < 10 else 0,
            skipped=int(skipped) if skipped.isdigit() and len(skipped) < 10 else 0,
            review_actions=reviews.ACTIONS,
        )

    async def failure(self, request: Request, session: Session | None, form: Form) -> Response:
        failure_id = str(parse.object_id(request.path_params["failure_id"], "failure_id"))
        found = await self.call(self.api.deps.failures.get, failure_id)
        if found is None:
            return self.problem(404, "No such failure.", session)
        return self.render("failure.html", session, failure=found)

    # -- actions ----------------------------------------------------------------------------------

    async def bulk(self, action: str, request: Request, session: Session | None, form: Form) -> Response:
        """Replay or purge: without ``confirm`` the dry run, shown for confirmation; with it, the real run."""
        ids = [i for i in form.get("ids", []) if i]
        filters = {name: _first(form, name) for name in FILTER_FIELDS}
        selection = parse_selection(filters, ids or None)
        run = ops.replay if action == "replay" else ops.purge
        who = _operator(session)
        if _first(form, "confirm") != "yes":
            dry = await self.call(run, selection, self.api.deps, who=who, dry_run=True)
            return self.render("confirm.html", session, action=action, result=dry, ids=ids, filters=filters)
        done = await self.call(run, selection, self.api.deps, who=who, dry_run=False)
        return _see("/ops", done=action, count=done.done, refused=done.refused, skipped=done.skipped)

    async def replay_event(self, request: Request, session: Session | None, form: Form) -> Response:
        event_id = parse.stripe_id(request.path_params["event_id"], "event_id", "evt")
        if not await self.call(ops.replay_event, event_id, self.api.deps, who=_operator(session)):
            return self.problem(404, "No stored event with that id.", session)
        return _see("/ops", done="event")

    async def reconcile(self, request: Request, session: Session | None, form: Form) -> Response:
        now = datetime.now(UTC)
        report = await self.call(ops.reconcile_audited, self.api.core, self.api.deps, who=_operator(session), now=now)
        return _see("/ops", done="reconcile", count=report.events_enqueued)

    async def review(self, request: Request, session: Session | None, form: Form) -> Response:
        intent_id = parse.intent_id(request.path_params["payment_id"], "paymentId")
        action = request.path_params["action"]
        now = datetime.now(UTC)
        await self.call(reviews.act, intent_id, action, _operator(session), self.api.core, self.api.deps.audit, now=now)
        return _see("/ops", done=action)
