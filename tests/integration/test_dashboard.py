"""``/ops``: the server-rendered ops dashboard (login, signed session, CSRF, pages, confirmed actions)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from adapters.mongo import now
from adapters.queue import build_broker, notification_message, send
from adapters.settings import Settings
from domain.refunds import ABANDONED
from ingress.composition import create_app
from ingress.dashboard import COOKIE, LoginCookies
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.integration.api_support import FakeGateway, api_settings
from tests.integration.test_ops_api import TOKEN, app_client
from tests.support import wait_for
from workers.composition import Worker

HTML = {"Accept": "text/html"}
CSRF = re.compile(r'name="csrf" value="([^"]*)"')


class QuietStripe(FakeGateway):
    """A Stripe with no events to list, for reconcile."""

    def list_events(self, event_type: str, since: int) -> list[Mapping[str, Any]]:
        return []


@pytest.fixture
def client(settings: Settings, db: Any) -> Iterator[TestClient]:
    broker = build_broker(settings)
    tuned = dataclasses.replace(api_settings(settings), ops_token=TOKEN)
    with TestClient(create_app(tuned, broker=broker, db=db, stripe_gateway=QuietStripe())) as client:
        yield client
    broker.close()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


#: The person the tests log in as.
NAME = "Dana Ops"


def log_in(client: TestClient) -> str:
    """Log in through the form; returns the session's CSRF token."""
    form = client.get("/ops/login", headers=HTML)
    data = {"name": NAME, "token": TOKEN, "csrf": csrf_of(form.text)}
    answer = client.post("/ops/login", data=data, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/ops")
    page = client.get("/ops", headers=HTML)
    assert page.status_code == 200
    return csrf_of(page.text)


def broken_failures(db: Any, worker: Worker, count: int) -> list[str]:
    """``count`` emails with a missing template, dead-lettered by the real worker; their failure ids."""
    for i in range(count):
        key = f"dash-broken-{i}"
        db.notifications.insert_one({"dedupeKey": key, "template": "nope", "recipient": "x@example.test",
                                     "context": {}, "status": "pending", "attempts": 0})  # fmt: skip
        send(worker.broker, notification_message(key))
    wait_for(lambda: db.job_failures.count_documents({}) == count, 20, f"{count} failures")
    return [str(doc["_id"]) for doc in db.job_failures.find()]


def test_logging_in_sets_a_strict_http_only_cookie(client: TestClient) -> None:
    """The token gives an 8-hour session cookie on /ops, HttpOnly and SameSite=Strict, Secure only over https."""
    form = client.get("/ops/login", headers=HTML)
    data = {"name": NAME, "token": TOKEN, "csrf": csrf_of(form.text)}
    answer = client.post("/ops/login", data=data, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/ops" in cookie and "Max-Age=28800" in cookie and "Secure" not in cookie
    assert TOKEN not in cookie
    client.cookies.clear()
    secure = client.get("https://testserver/ops/login", headers=HTML).headers["set-cookie"]
    assert "Secure" in secure and "HttpOnly" in secure


def test_a_wrong_token_gives_no_session(client: TestClient) -> None:
    """A wrong token is 401 on the form; without a session a browser is sent to log in and anything else gets 401."""
    form = client.get("/ops/login", headers=HTML)
    wrong = client.post("/ops/login", data={"name": NAME, "token": "not-the-token", "csrf": csrf_of(form.text)})
    assert wrong.status_code == 401 and "not the ops token" in wrong.text
    redirect = client.get("/ops", headers=HTML, follow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (303, "/ops/login")
    assert client.get("/ops", headers={"Accept": "application/json"}).status_code == 401
    assert client.get(f"/ops/failures/{ObjectId()}", headers={"Accept": "*/*"}).status_code == 401
    assert client.post("/ops/reconcile", data={"csrf": csrf_of(form.text)}).status_code == 401


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, db: Any) -> None:
    """Logged in, a form POST with no CSRF token or another one is 403 and does nothing; so is a login without it."""
    csrf = log_in(client)
    for data in ({}, {"csrf": ""}, {"csrf": "x" * len(csrf)}):
        answer = client.post("/ops/reconcile", data=data)
        assert answer.status_code == 403 and "text/html" in answer.headers["content-type"]
        assert client.post("/ops/failures/purge", data={**data, "confirm": "yes"}).status_code == 403
    assert db.ops_audit.count_documents({}) == 0
    assert client.post("/ops/reconcile", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert db.ops_audit.find_one({"who": NAME, "via": "ops-dashboard"})["action"] == "reconcile"
    client.cookies.clear()
    assert client.post("/ops/login", data={"name": NAME, "token": TOKEN}).status_code == 403


def test_without_an_ops_token_configured_every_page_is_404(settings: Settings, db: Any) -> None:
    """OPS_TOKEN unset: the dashboard's pages and forms do not exist."""
    for client in app_client(settings, db, None):
        for method, path in [("GET", "/ops"), ("GET", "/ops/login"), ("POST", "/ops/login"), ("POST", "/ops/logout"),
                             ("GET", f"/ops/failures/{ObjectId()}"), ("POST", "/ops/failures/replay")]:  # fmt: skip
            answer = client.request(method, path, headers=HTML, data={"token": TOKEN})
            assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found"), path


def test_a_tampered_expired_or_login_form_cookie_is_no_session(client: TestClient, db: Any) -> None:
    """A session is only what the server holds: a changed id, an expired session or the login form's cookie is none."""
    log_in(client)
    value = client.cookies[COOKIE]
    login_form = LoginCookies(TOKEN).issue()[1]
    for cookie, status in ((value, 200), (f"{value[:-2]}xx", 303), (value[:-1], 303), (login_form, 303)):
        client.cookies.clear()
        client.cookies.set(COOKIE, cookie, path="/ops")
        assert client.get("/ops", headers=HTML, follow_redirects=False).status_code == status
    assert TOKEN not in str(db.ops_sessions.find_one()) and value not in str(db.ops_sessions.find_one())
    db.ops_sessions.update_many({}, {"$set": {"expiresAt": now()}})
    client.cookies.set(COOKIE, value, path="/ops")
    assert client.get("/ops", headers=HTML, follow_redirects=False).status_code == 303
    forms = LoginCookies(TOKEN, clock=lambda: 1_000_000.0)
    _, old = forms.issue()
    assert forms.read(old) is not None
    assert LoginCookies(TOKEN, clock=lambda: 1_000_000.0 + 3600).read(old) is None
    assert LoginCookies("another-token-of-thirty-two-bytes!!", clock=lambda: 1_000_000.0).read(old) is None


def test_logging_out_ends_the_session(client: TestClient) -> None:
    """After logout the cookie is gone and /ops sends the browser to log in again."""
    csrf = log_in(client)
    answer = client.post("/ops/logout", data={"csrf": csrf}, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/ops/login")
    assert client.get("/ops", headers=HTML, follow_redirects=False).status_code == 303


def test_replay_goes_through_a_confirmation_and_the_failure_leaves_the_dead_list(
    client: TestClient, worker: Worker, db: Any
) -> None:
    """Two dead emails listed; the detail shows the traceback; replay shows the dry run, then replays one for real."""
    first, second = broken_failures(db, worker, 2)
    csrf = log_in(client)
    page = client.get("/ops", headers=HTML).text
    assert f'data-failure="{first}"' in page and f'data-failure="{second}"' in page
    detail = client.get(f"/ops/failures/{first}", headers=HTML)
    assert detail.status_code == 200 and "TemplateNotFound" in detail.text and "Traceback" in detail.text
    confirm = client.post("/ops/failures/replay", data={"csrf": csrf, "ids": first})
    assert confirm.status_code == 200 and "Replay 1 failure?" in confirm.text and 'name="confirm"' in confirm.text
    assert db.job_failures.find_one({"_id": ObjectId(first)})["state"] == "dead"
    done = client.post(
        "/ops/failures/replay", data={"csrf": csrf, "ids": first, "confirm": "yes"}, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/ops?done=replay&count=1&refused=0&skipped=0")
    record = db.job_failures.find_one({"_id": ObjectId(first)})
    assert (record["state"], record["replayedBy"]) == ("replayed", NAME)
    after = client.get(done.headers["location"], headers=HTML).text
    assert "Replayed 1 failure(s)." in after
    assert f'data-failure="{first}"' not in after and f'data-failure="{second}"' in after
    replayed = client.get("/ops", params={"state": "replayed"}, headers=HTML).text
    assert f'data-failure="{first}"' in replayed
    assert db.ops_audit.find_one({"who": NAME, "state": "finished"})["action"] == "replay"


def test_purge_all_matching_a_filter_is_confirmed_first(client: TestClient, db: Any) -> None:
    """A filter's dry run counts what matches; the confirmed purge marks exactly those."""
    for actor in ("send_notification", "send_notification", "process_event"):
        db.job_failures.insert_one({"queue": "q", "actor": actor, "message": "?", "error": "boom",
                                    "state": "dead", "lastFailedAt": now()})  # fmt: skip
    csrf = log_in(client)
    confirm = client.post("/ops/failures/purge", data={"csrf": csrf, "actor": "send_notification"})
    assert "Purge 2 failures?" in confirm.text
    done = client.post("/ops/failures/purge", data={"csrf": csrf, "actor": "send_notification", "confirm": "yes"})
    assert "Purged 2 failure(s)." in done.text
    assert db.job_failures.count_documents({"state": "purged"}) == 2
    assert db.job_failures.find_one({"actor": "process_event"})["state"] == "dead"


def test_pages_escape_what_they_show_and_carry_security_headers(client: TestClient, db: Any) -> None:
    """Error text is HTML-escaped; pages are not cached, not framed, and allow no script."""
    found = db.job_failures.insert_one({"queue": "q", "actor": "a", "message": "?", "state": "dead",
                                        "error": "<script>alert(1)</script>", "lastFailedAt": now()})  # fmt: skip
    log_in(client)
    for path in ("/ops", f"/ops/failures/{found.inserted_id}"):
        page = client.get(path, headers=HTML)
        assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
        assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in page.headers["content-security-policy"]
    assert client.get(f"/ops/failures/{ObjectId()}", headers=HTML).status_code == 404
    assert client.get("/ops/failures/nope", headers=HTML).status_code == 422
    assert client.get("/ops", params={"state": "lost"}, headers=HTML).status_code == 422


def test_the_review_queue_events_and_their_buttons(client: TestClient, db: Any) -> None:
    """Flagged payments and recent events are listed; dismiss resolves a review; a failed event is queued again."""
    db.payments.insert_one({**pending_payment("pi_dash_review"), "status": "completed", "paidAt": now(),
                            "openKey": None, "reviewRequired": {"reason": "amount_mismatch", "at": now()}})  # fmt: skip
    event = events.event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    db.stripe_events.insert_one({"_id": event["id"], "type": event["type"], "status": "failed", "attempts": 3,
                                 "receivedAt": now(), "payload": event})  # fmt: skip
    csrf = log_in(client)
    page = client.get("/ops", headers=HTML).text
    assert "pi_dash_review" in page and "amount_mismatch" in page
    assert event["id"] in page and f"/ops/events/{event['id']}/replay" in page
    dismissed = client.post("/ops/reviews/pi_dash_review/dismiss", data={"csrf": csrf}, follow_redirects=False)
    assert dismissed.status_code == 303
    assert db.payments.find_one({"paymentId": "pi_dash_review"})["reviewResolved"]["action"] == "dismiss"
    again = client.post("/ops/reviews/pi_dash_review/dismiss", data={"csrf": csrf})
    assert again.status_code == 404 and "no payment under review" in again.text
    assert client.post("/ops/reviews/pi_dash_review/explode", data={"csrf": csrf}).status_code == 422
    replayed = client.post(f"/ops/events/{event['id']}/replay", data={"csrf": csrf}, follow_redirects=False)
    assert replayed.status_code == 303
    assert client.post("/ops/events/evt_unknown/replay", data={"csrf": csrf}).status_code == 404
    actions = sorted(a["action"] for a in db.ops_audit.find({"who": NAME, "via": "ops-dashboard"}))
    assert actions == ["replay_event", "review_dismiss"]


def test_refund_requests_given_up_are_listed(client: TestClient, db: Any) -> None:
    """A request the sweep gave up on is shown to ops with who asked; a refused one is not."""
    entry = {"amount": 2500, "status": "failed", "refundRequestId": "req_late", "requestedBy": {"role": "customer"},
             "createdAt": now(), "updatedAt": now()}  # fmt: skip
    refused = {**entry, "refundRequestId": "req_refused", "failureReason": "no"}
    refunds = [{**entry, "failureReason": ABANDONED}, refused]
    db.payments.insert_one({**pending_payment("pi_given_up"), "status": "completed", "refunds": refunds})
    log_in(client)
    page = client.get("/ops", headers=HTML).text
    section = page[page.index('id="given-up-refunds"') :]
    assert "pi_given_up" in section and "req_late" in section and "customer" in section
    assert "req_refused" not in section


def test_records_a_replay_or_purge_holds_are_listed_by_their_state_and_skips_are_told(
    client: TestClient, db: Any
) -> None:
    """A record taken by a running replay is found under "being replayed"; a replay that lost a race says so."""
    record = {"queue": "q", "actor": "a", "message": "?", "error": "boom", "state": "replaying"}
    taken = db.job_failures.insert_one({**record, "claimUntil": now() + timedelta(minutes=5), "lastFailedAt": now()})
    log_in(client)
    listed = client.get("/ops", params={"state": "replaying"}, headers=HTML).text
    assert f'data-failure="{taken.inserted_id}"' in listed and "being replayed" in listed
    assert f'data-failure="{taken.inserted_id}"' not in client.get("/ops", headers=HTML).text
    told = client.get("/ops", params={"done": "replay", "count": "0", "refused": "0", "skipped": "1"}, headers=HTML)
    assert "1 skipped: another replay or purge took them first." in told.text
