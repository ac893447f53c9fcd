"""Dumb stand-ins for the ports MongoDB does not serve: Stripe, the outbox. They store, never decide.

The use cases are tested against the real MongoDB adapters (the stand-in, or ``TEST_MONGODB_URI``);
the rules are tested as pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.database import Database

from adapters.enrollments import MongoEnrollments
from adapters.mongo import MongoInbox, MongoPayments
from usecases.ports import Deps, Enrollments, Links


class FakeStripe:
    """Intents as Stripe would report them now, by id; every retrieval is logged."""

    def __init__(self, intents: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.intents = dict(intents or {})
        self.calls: list[str] = []

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        self.calls.append(intent_id)
        return self.intents[intent_id]


class RecordingOutbox:
    """Every ``notify`` call, in order (the real outbox's dedupe is tested against MongoDB)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, str]]] = []

    def notify(self, key: str, template: str, to: str, context: Mapping[str, str]) -> None:
        self.calls.append((key, template, to, dict(context)))

    def keys(self, template: str) -> set[str]:
        return {key for key, tpl, _, _ in self.calls if tpl == template}

    def recipients(self, template: str) -> set[str]:
        return {to for _, tpl, to, _ in self.calls if tpl == template}


class BrokenEnrollments:
    """Enrollments that cannot be written (a validator refusing, MongoDB refusing the collection)."""

    def activate(self, payment: Any, verified: bool) -> tuple[str, Any]:
        raise RuntimeError("enrollments refused the write")

    def mark_verified(self, payment: Any) -> None:
        raise RuntimeError("enrollments refused the write")


LINKS = Links(app_base_url="http://app.test", ops_email="ops@example.test")


def mongo_deps(
    db: Database[Any],
    intents: Mapping[str, Mapping[str, Any]] | None = None,
    enrollments: Enrollments | None = None,
) -> Deps:
    """The real MongoDB adapters on ``db``, with a fake Stripe and a recording outbox."""
    return Deps(
        payments=MongoPayments(db),
        inbox=MongoInbox(db),
        stripe=FakeStripe(intents),
        enrollments=enrollments or MongoEnrollments(db),
        outbox=RecordingOutbox(),
        links=LINKS,
    )
