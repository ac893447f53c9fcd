"""``/ops/api``: the ops service over HTTP behind OPS_TOKEN (issue 9, docs/api.md#ops-api)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.queue import build_broker, notification_message, send
from adapters.settings import Settings
from payments_ops import events
from tests.integration.api_support import api_settings, client_of
from tests.support import wait_for
from workers.composition import Worker

TOKEN = "ops-token-of-at-least-thirty-two-bytes"
ROUTES = [
    ("GET", "/ops/api/queues"),
    ("GET", "/ops/api/failures"),
    ("GET", "/ops/api/failures/0123456789abcdef01234567"),
    ("POST", "/ops/api/failures/replay"),
    ("POST", "/ops/api/failures/purge"),
    ("POST", "/ops/api/events/evt_123/replay"),
]


def app_client(settings: Settings, db: Any, token: str | None) -> Iterator[TestClient]:
    with client_of(dataclasses.replace(api_settings(settings), ops_token=token), db) as client:
        yield client


@pytest.fixture
def client(settings: Settings, db: Any) -> Iterator[TestClient]:
    yield from app_client(settings, db, TOKEN)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_ops_route_needs_the_token(client: TestClient, method: str, path: str) -> None:
    """No token, or another one: 401 in the API's error shape."""
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        answer = client.request(method, path, headers=headers, json={})
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_an_ops_token_configured_the_routes_do_not_exist(
    settings: Settings, db: Any, method: str, path: str
) -> None:
    """OPS_TOKEN unset: 404 for every ops route, whatever the caller sends."""
    for client in app_client(settings, db, None):
        answer = client.request(method, path, headers=AUTH, json={})
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


def test_failures_are_listed_shown_replayed_and_purged_over_http(client: TestClient, worker: Worker, db: Any) -> None:
    """Three broken emails: listed with a filter, one shown, a dry run, a real purge; queues report the dead."""
    for i in range(3):
        key = f"api-broken-{i}"
        db.notifications.insert_one({"dedupeKey": key, "template": "nope", "recipient": "x@example.test",
                                     "context": {}, "status": "pending", "attempts": 0})  # fmt: skip
        send(worker.broker, notification_message(key))
    wait_for(lambda: db.job_failures.count_documents({}) == 3, 20, "three failures")
    listed = client.get("/ops/api/failures", params={"actor": "send_notification", "limit": "2"}, headers=AUTH)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2 and listed.json()["nextCursor"]
    shown = client.get(f"/ops/api/failures/{listed.json()['items'][0]['id']}", headers=AUTH).json()
    assert shown["actor"] == "send_notification" and "TemplateNotFound" in shown["error"]
    assert client.get("/ops/api/queues", headers=AUTH).json()["emails"]["dead"] == 3
    dry = client.post("/ops/api/failures/purge", json={"filter": {"actor": "send_notification"}}, headers=AUTH).json()
    assert (dry["count"], dry["dry_run"], len(dry["sample"])) == (3, True, 3)
    real = client.post("/ops/api/failures/purge", json={"ids": [shown["id"]], "dry_run": False}, headers=AUTH).json()
    assert (real["done"], db.job_failures.count_documents({"state": "purged"})) == (1, 1)
    assert client.get("/ops/api/queues", headers=AUTH).json()["emails"]["dead"] == 2
    assert db.ops_audit.find_one({"who": "token", "via": "ops-api", "state": "finished"})["action"] == "purge"


def test_a_stored_event_is_replayed_and_an_unknown_one_is_404(client: TestClient, db: Any) -> None:
    """events/{id}/replay queues the stored payload again; an id the inbox never saw is 404."""
    event = events.event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    db.stripe_events.insert_one({"_id": event["id"], "status": "failed", "payload": event})
    assert client.post(f"/ops/api/events/{event['id']}/replay", headers=AUTH).status_code == 202
    assert client.post("/ops/api/events/evt_unknown/replay", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dry_run": "no"}, "dry_run"),
        ({"filter": {"colour": "red"}}, "colour"),
        ({"ids": ["not-an-id"]}, "ids"),
        ({"rate": -1}, "rate"),
        ({"filter": {"since": "yesterday"}}, "since"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    """Every value of a replay body is parsed at the edge."""
    answer = client.post("/ops/api/failures/replay", json=body, headers=AUTH)
    assert (answer.status_code, answer.json()["error"].get("field")) == (422, field)


def test_stuck_work_is_listed_and_requeued(client: TestClient, db: Any, settings: Settings) -> None:
    """A dead worker's in-flight message and an event left failed are shown, then given back on demand."""
    from adapters.queue import STRIPE_EVENTS_QUEUE, event_message
    from tests.support import wait_for as wait

    quick = dataclasses.replace(settings, broker_heartbeat_timeout_ms=300)
    victim = build_broker(quick)
    victim.flush_all()
    send(victim, event_message(events.event("payment_intent.succeeded", {"id": "pi_1"})))
    assert len(victim.do_fetch(STRIPE_EVENTS_QUEUE, 1)) == 1  # taken, never acknowledged: then the worker "dies"
    old = events.event("payment_intent.processing", {"id": "pi_2", "object": "payment_intent"})
    db.stripe_events.insert_one({"_id": old["id"], "type": old["type"], "status": "failed", "payload": old,
                                 "receivedAt": datetime.now(UTC) - timedelta(hours=1)})  # fmt: skip
    stuck = wait(lambda: client.get("/ops/api/stuck", params={"olderThan": "60"}, headers=AUTH).json(), 10)
    wait(lambda: client.get("/ops/api/stuck", headers=AUTH).json()["deadWorkers"].get(victim.broker_id) == 1, 10)
    assert [e["id"] for e in stuck["unfinishedEvents"]] == [old["id"]]
    done = client.post("/ops/api/stuck/requeue", params={"olderThan": "60"}, headers=AUTH).json()
    assert done == {"messagesRequeued": 1, "eventsRequeued": 1}
    assert victim.client.llen(f"dramatiq:{STRIPE_EVENTS_QUEUE}") == 2
    victim.flush_all()
    victim.close()


@pytest.mark.parametrize("state", ["dead", "replaying", "purging", "replayed", "purged"])
def test_failures_are_filtered_by_every_state_a_record_can_be_in(client: TestClient, db: Any, state: str) -> None:
    db.job_failures.insert_one({"queue": "q", "actor": "a", "message": "?", "error": "boom", "state": state,
                                "claimUntil": datetime.now(UTC) + timedelta(minutes=5),
                                "lastFailedAt": datetime.now(UTC)})  # fmt: skip
    listed = client.get("/ops/api/failures", params={"state": state}, headers=AUTH)
    assert listed.status_code == 200 and [item["state"] for item in listed.json()["items"]] == [state]
