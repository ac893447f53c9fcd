"""What tests/integration/test_wheel.py runs inside the venv that has only the installed wheel.

Run as a script from a directory outside the checkout, with the installed wheel's Python: it
starts every entry point as its command would (``python -m ingress``, the module ``python -m
workers`` has Dramatiq import, the package data), renders every email and dashboard template, and
prints what it found as one JSON line. The rendering functions also run in the checkout, so the
test compares the installed package's output with the checkout's.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any
from unittest import mock

#: The project's top-level packages, each of which must come from site-packages.
PACKAGES = ("adapters", "domain", "usecases", "ingress", "workers", "payments_ops", "devstack", "templates")

#: What ``Dashboard.render`` passes every page, as for a logged-in person.
BASE = {"csrf": "csrf-token", "authed": True, "who": "Dana Ops"}
_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
_FAILURE = {
    "id": "65a1b2c3d4e5f60718293a4b",
    "state": "dead",
    "queue": "stripe-events",
    "actor": "process_event",
    "messageId": "m-1",
    "eventId": "evt_1",
    "eventType": "payment_intent.succeeded",
    "attempts": 3,
    "firstFailedAt": _AT,
    "lastFailedAt": _AT,
    "error": "RuntimeError: boom",
    "message": {"args": ["evt_1"], "kwargs": {}},
    "traceback": "Traceback (most recent call last): ...",
}
_FILTERS = {"queue": "stripe-events", "actor": "", "error": ""}
#: A context for each dashboard page (partials render with ``BASE`` alone).
DASHBOARD_CONTEXTS: dict[str, dict[str, Any]] = {
    "index.html": {
        "queues": {"stripe-events": {"ready": 1, "delayed": 0, "in_flight": 2, "dead": 1}},
        "failures": [_FAILURE],
        "next_cursor": "next",
        "reviews": [
            {
                "paymentId": "p1",
                "reviewRequired": {"reason": "amount_mismatch", "at": "2026-01-02"},
                "amount": 1499,
                "currency": "inr",
                "status": "completed",
            }
        ],
        "events": [{"_id": "evt_1", "type": "charge.refunded", "status": "failed", "attempts": 2, "receivedAt": _AT}],
        "filters": _FILTERS,
        "state": "dead",
        "notice": "Replayed 1 failure(s).",
        "refused": 0,
        "review_actions": ["activate", "refund", "dismiss"],
    },
    "failure.html": {"failure": _FAILURE},
    "confirm.html": {"action": "replay", "result": {"count": 2, "sample": [_FAILURE]}, "ids": [], "filters": _FILTERS},
    "login.html": {"error": "That is not the ops token.", "person": "Dana"},
    "error.html": {"status": 404, "message": "No such failure."},
}


def where() -> dict[str, str]:
    """Each package's ``__file__``."""
    return {name: str(importlib.import_module(name).__file__) for name in PACKAGES}


def template_files() -> list[str]:
    """Every data file of the ``templates`` package, relative to it."""

    def walk(node: Traversable, prefix: str) -> Iterator[str]:
        for child in node.iterdir():
            if child.is_dir():
                if child.name != "__pycache__":
                    yield from walk(child, f"{prefix}{child.name}/")
            elif not child.name.endswith(".py") and not child.name.startswith("."):
                yield prefix + child.name

    return sorted(walk(resources.files("templates"), ""))


def render_emails(contexts: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Every email template the package has, rendered: ``{name: [subject, text, html]}``, or ``{name: None}``
    for one the contexts do not cover."""
    from adapters.mailer import Mailer

    mailer = Mailer(None, "payments@localhost")
    names = {name.split("/")[1] for name in mailer.env.list_templates() if name.count("/") == 2}
    return {name: list(mailer.render(name, contexts[name])) if name in contexts else None for name in sorted(names)}


def measured_contexts() -> dict[str, dict[str, Any]]:
    """The pages whose context the project's own code builds: the success metrics of one payment, a
    payment's story (over dumb reads and a Stripe that cannot be asked) and a search's rows."""
    from adapters.story import search_json, story_json
    from domain.success_metrics import PaymentFacts
    from ingress.success_metrics import page_context
    from usecases.ports import StripeUnavailable
    from usecases.story import StoryDeps, story
    from usecases.success_metrics import measure

    class Facts:
        def payments(self, start: datetime, end: datetime) -> list[PaymentFacts]:
            return [PaymentFacts(created_at=_AT, status="completed", amount=4900, currency="INR", paid_at=_AT)]

        def events(self, start: datetime, end: datetime) -> list[Any]:
            return []

    payment = {"_id": "65a1b2c3d4e5f60718293a4c", "paymentId": "pi_1", "status": "completed", "amount": 4900,
               "currency": "INR", "createdAt": _AT, "paidAt": _AT, "customerEmail": "asha@example.com",
               "serviceName": "Yoga", "statusHistory": [{"status": "completed", "at": _AT}]}  # fmt: skip

    class Reads:
        def payment(self, key: str) -> dict[str, Any]:
            return payment

        def events_of(self, object_ids: Any) -> list[Any]:
            return [{"_id": "evt_1", "type": "payment_intent.succeeded", "status": "failed", "attempts": 2,
                     "receivedAt": _AT}]  # fmt: skip

        def failures_of(self, intent_id: str, event_ids: Any) -> list[Any]:
            return [{"_id": _FAILURE["id"], **_FAILURE}]

        def emails_of(self, record_id: Any) -> list[Any]:
            return [{"template": "enrollment_confirmation", "status": "failed", "createdAt": _AT, "failedAt": _AT}]

        def enrollment_of(self, payment: Any) -> None:
            return None

        def audit_of(self, intent_id: str, event_ids: Any, failure_ids: Any) -> list[Any]:
            return []

    class Unreachable:
        def payment_view(self, intent_id: str) -> Any:
            raise StripeUnavailable("Stripe did not answer in 5 s")

    told = story_json(story("pi_1", StoryDeps(Reads(), Unreachable(), lambda: _AT)) or {})  # type: ignore[arg-type]
    return {
        "metrics.html": page_context(measure(Facts(), "24h", now=_AT), "24h"),
        "payment.html": {
            "story": told,
            "reconcile": {},
            "review_actions": ["activate", "refund", "dismiss"],
            "now": _AT,
        },
        "payments.html": {"q": "asha@example.com", "rows": search_json([payment]), "problem": None},
    }


def render_dashboard() -> dict[str, str]:
    """Every dashboard template, rendered as ``Dashboard.render`` does (its environment and filters)."""
    from ingress.dashboard import TEMPLATES

    contexts = {**DASHBOARD_CONTEXTS, **measured_contexts()}
    return {
        name: TEMPLATES.get_template(name).render(**BASE, **contexts.get(name, {}))
        for name in sorted(TEMPLATES.env.list_templates())
    }


async def _get(app: Any, path: str) -> tuple[int, str]:
    """One GET through the ASGI app (as uvicorn hands it a request): status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"accept", b"text/html")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5001),
        "state": {},
    }
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.sleep(3600)  # the client stays connected until the answer is out
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 30)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body.decode()


def start_ingress() -> dict[str, Any]:
    """``python -m ingress``'s ``main`` up to the server's start: its app and uvicorn's loaded configuration."""
    import uvicorn

    import ingress.__main__ as command

    built: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        config = uvicorn.Config(app, **options)
        config.load()  # what uvicorn.run does before it serves: the protocol, the loop, the app wrapped
        built["config"] = config

    with mock.patch.object(uvicorn, "run", run):
        code = command.main()
    config = built["config"]
    pages = {path: asyncio.run(_get(config.loaded_app, path)) for path in ("/ops/login", "/openapi.json")}
    return {
        "exit": code,
        "protocol": config.http_protocol_class.__name__,
        "pages": {path: [status, len(body), 'name="csrf"' in body] for path, (status, body) in pages.items()},
    }


def start_worker() -> dict[str, Any]:
    """``python -m workers``'s ``main``, with the module Dramatiq's CLI imports in each worker process imported."""
    import dramatiq.cli

    import workers.__main__ as command

    found: dict[str, Any] = {}

    def cli(args: Any) -> int:
        module = importlib.import_module(args.broker)  # what each worker process does first
        found["module"] = args.broker
        found["actors"] = sorted(module.broker.get_declared_actors())
        found["queues"] = sorted(module.broker.get_declared_queues())
        return 0

    with mock.patch.object(dramatiq.cli, "main", cli), mock.patch.object(sys, "argv", ["workers"]):
        found["exit"] = command.main()
    return found


def main() -> None:
    contexts = json.load(sys.stdin)
    report = {
        "python": sys.prefix,
        "where": where(),
        "template_files": template_files(),
        "emails": render_emails(contexts),
        "dashboard": render_dashboard(),
        "ingress": start_ingress(),
        "worker": start_worker(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
