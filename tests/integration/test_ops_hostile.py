"""Hostile requests against the ops doors: login guessing, a cookie kept after logout, absurd replay rates, no names.

Each test sends from outside what was found to get through (through the app over HTTP, or the
``payments-ops`` command as a shell runs it) and checks the answer and what was written.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.mongo import now
from adapters.queue import Broker, notification_message
from adapters.settings import Settings
from ingress.composition import create_app
from ingress.dashboard import COOKIE
from tests.integration.api_support import api_settings
from tests.integration.test_dashboard import HTML, QuietStripe, csrf_of
from tests.integration.test_ops import ROOT, cli_env
from tests.integration.test_ops_api import AUTH, TOKEN
from tests.support import wait_for

REPLAY = "/ops/api/failures/replay"


def serve(settings: Settings, db: Any, broker: Broker, address: str = "testclient") -> TestClient:
    tuned = dataclasses.replace(api_settings(settings), ops_token=TOKEN)
    app = create_app(tuned, broker=broker, db=db, stripe_gateway=QuietStripe())
    return TestClient(app, client=(address, 50000))


@pytest.fixture
def client(settings: Settings, db: Any, broker: Broker) -> Iterator[TestClient]:
    with serve(settings, db, broker) as client:
        yield client


def signed_failures(db: Any, broker: Broker, count: int) -> list[str]:
    """``count`` dead email jobs as the worker records them, each message signed with the project's key."""
    ids = []
    for i in range(count):
        message = broker.signer.sign(notification_message(f"hostile-{i}"))
        encoded = message.encode().decode()
        doc = {"queue": "emails", "actor": message.actor_name, "message": encoded, "error": "boom",
               "attempts": 1, "state": "dead", "lastFailedAt": now()}  # fmt: skip
        ids.append(str(db.job_failures.insert_one(doc).inserted_id))
    return ids


def log_in(client: TestClient, name: str = "Ada Lovelace", token: str = TOKEN) -> Any:
    form = client.get("/ops/login", headers=HTML)
    data = {"name": name, "token": token, "csrf": csrf_of(form.text)}
    return client.post("/ops/login", data=data, headers=HTML, follow_redirects=False)


# Login -------------------------------------------------------------------------------------------------------


def test_login_guesses_are_throttled_per_address(settings: Settings, db: Any, broker: Broker) -> None:
    """150 wrong tokens went through at 786/s: after 5 failures a minute the address gets 429 with Retry-After."""
    guessing, other = "198.51.100.7", "198.51.100.8"
    try:
        with serve(settings, db, broker, guessing) as guesser, serve(settings, db, broker, other) as someone:
            for _ in range(5):
                assert log_in(guesser, token="not-the-token").status_code == 401
            for token in ("still-not-the-token", TOKEN):  # once throttled even the right token waits
                refused = log_in(guesser, token=token)
                assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
                assert "Too many failed logins" in refused.text and "." in guesser.cookies[COOKIE]  # no session
            form = csrf_of(guesser.get("/ops/login", headers=HTML).text)
            data = {"name": "bot", "token": TOKEN, "csrf": form}
            scripted = guesser.post("/ops/login", data=data, headers={"Accept": "application/json"})
            assert (scripted.status_code, scripted.json()["error"]["code"]) == (429, "rate_limited")
            assert "retry-after" in scripted.headers
            assert log_in(someone).status_code == 303  # another address is not held up
    finally:
        broker.client.delete(f"ops-login-failures:{guessing}", f"ops-login-failures:{other}")


def test_a_cookie_kept_after_logout_is_no_session(client: TestClient) -> None:
    """The session cookie worked for 8 hours after logout (stateless): logout now revokes it on the server."""
    assert log_in(client).status_code == 303
    kept = client.cookies[COOKIE]
    csrf = csrf_of(client.get("/ops", headers=HTML).text)
    assert client.post("/ops/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE, kept, path="/ops")
    replayed = client.get("/ops", headers=HTML, follow_redirects=False)
    assert (replayed.status_code, replayed.headers["location"]) == (303, "/ops/login")
    assert client.post("/ops/reconcile", data={"csrf": csrf}).status_code == 401


def test_the_dashboard_asks_for_a_name_and_the_audit_records_it(client: TestClient, db: Any) -> None:
    """No name, no session; the name given at login is who the audit names, at the start and the end of a run."""
    nameless = log_in(client, name="")
    assert nameless.status_code == 422 and COOKIE not in nameless.headers.get("set-cookie", "x.y")
    assert log_in(client, name="Grace Hopper").status_code == 303
    csrf = csrf_of(client.get("/ops", headers=HTML).text)
    assert client.post("/ops/reconcile", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    records = list(db.ops_audit.find({"action": "reconcile"}).sort("at", 1))
    assert [(r["who"], r["via"], r["state"]) for r in records] == [
        ("Grace Hopper", "ops-dashboard", "started"),
        ("Grace Hopper", "ops-dashboard", "finished"),
    ]


# Replay rate -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [5e-324, 1e-300, 1e-9, 0.09, 1000.5, 1e308, True, "10"])
def test_a_rate_outside_a_tenth_to_a_thousand_per_second_is_422(client: TestClient, rate: Any) -> None:
    """5e-324 and 1e-300 gave 500, 1e-9 slept for 31 years: a rate is a number from 0.1 to 1000 per second."""
    for dry_run in (True, False):
        answer = client.post(REPLAY, json={"rate": rate, "dry_run": dry_run}, headers=AUTH)
        assert (answer.status_code, answer.json()["error"]["field"]) == (422, "rate"), dry_run


def test_a_tiny_rate_replays_nothing_and_answers_422(client: TestClient, db: Any, broker: Broker) -> None:
    """5e-324 replayed the first failure and then failed with 500 before the audit: now refused before any work."""
    [failure] = signed_failures(db, broker, 1)
    answer = client.post(REPLAY, json={"rate": 5e-324, "dry_run": False}, headers=AUTH)
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "validation_error")
    assert db.job_failures.find_one()["state"] == "dead" and db.ops_audit.count_documents({}) == 0
    assert failure


def test_a_real_replay_at_a_rate_is_a_job_that_reports_progress(client: TestClient, db: Any, broker: Broker) -> None:
    """A replay at a rate held the request for as long as it took: it is a job, 202, with its progress to read."""
    ids = signed_failures(db, broker, 3)
    headers = {**AUTH, "X-Ops-Actor": "Priya Ops"}
    answer = client.post(REPLAY, json={"ids": ids, "rate": 20, "dry_run": False}, headers=headers)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["count"] == 3 and answer.headers["location"] == f"/ops/api/jobs/{job['jobId']}"

    def finished() -> Any:
        status = client.get(f"/ops/api/jobs/{job['jobId']}", headers=AUTH).json()
        return status if status["state"] != "running" else None

    status = wait_for(finished, 20, "the replay job")
    assert (status["state"], status["done"], status["total"], status["who"]) == ("finished", 3, 3, "Priya Ops")
    assert db.job_failures.count_documents({"state": "replayed", "replayedBy": "Priya Ops"}) == 3
    records = [(r["who"], r["via"], r["state"], r["count"]) for r in db.ops_audit.find().sort("at", 1)]
    assert records == [("Priya Ops", "ops-api", "started", 3), ("Priya Ops", "ops-api", "finished", 3)]
    assert client.get("/ops/api/jobs/0123456789abcdef01234567", headers=AUTH).status_code == 404
    assert client.get(f"/ops/api/jobs/{job['jobId']}").status_code == 401


def test_api_callers_are_named_by_header_or_as_the_token(client: TestClient, db: Any, broker: Broker) -> None:
    """Without ``X-Ops-Actor`` the audit names "token"; a name with control characters is 422."""
    signed_failures(db, broker, 1)
    assert client.post("/ops/api/failures/purge", json={"dry_run": False}, headers=AUTH).status_code == 200
    assert {r["who"] for r in db.ops_audit.find()} == {"token"}
    bad = client.post("/ops/api/failures/purge", json={}, headers={**AUTH, "X-Ops-Actor": "a\tb"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "X-Ops-Actor")


# The command ---------------------------------------------------------------------------------------------------


def test_the_command_refuses_an_absurd_rate_and_names_the_person(db: Any, settings: Settings, broker: Broker) -> None:
    """``--rate 1e-9`` is exit 2 naming --rate; ``--as`` names the person, else the OS user, start and end."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "payments_ops", *args], env=cli_env(settings), cwd=ROOT,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    signed_failures(db, broker, 2)
    for rate in ("1e-9", "5e-324", "nan", "2000"):
        refused = cli("failures", "replay", "--rate", rate, "--yes")
        assert refused.returncode == 2 and "--rate" in refused.stderr, (rate, refused.stderr)
    assert db.job_failures.count_documents({"state": "dead"}) == 2
    started = time.monotonic()
    done = cli("--json", "failures", "replay", "--rate", "1000", "--yes", "--as", "Linus")
    assert done.returncode == 0 and json.loads(done.stdout)["done"] == 2, done.stderr
    assert time.monotonic() - started < 30
    assert cli("failures", "purge", "--yes").returncode == 0
    records = [(r["who"], r["via"], r["action"], r["state"]) for r in db.ops_audit.find().sort("at", 1)]
    me = getpass.getuser()
    assert records == [
        ("Linus", "payments-ops", "replay", "started"),
        ("Linus", "payments-ops", "replay", "finished"),
        (me, "payments-ops", "purge", "started"),
        (me, "payments-ops", "purge", "finished"),
    ]


def test_a_job_asked_to_stop_at_shutdown_is_recorded_stopped(settings: Settings, db: Any, broker: Broker) -> None:
    """Shutting the ingress down mid-job stops it between two messages; the rest stays dead, to replay again."""
    signed_failures(db, broker, 3)
    with serve(settings, db, broker) as client:
        answer = client.post(REPLAY, json={"rate": 0.1, "dry_run": False}, headers=AUTH)
        assert answer.status_code == 202
        wait_for(lambda: db.job_failures.count_documents({"state": "replayed"}) == 1, 10, "the first replay")
    job = db.ops_jobs.find_one()
    assert (job["state"], job["done"], job["total"]) == ("stopped", 1, 3)
    assert [(r["state"], r["count"]) for r in db.ops_audit.find().sort("at", 1)] == [("started", 3), ("stopped", 1)]
    assert db.job_failures.count_documents({"state": "dead"}) == 2


def test_the_login_throttle_counts_in_memory_while_redis_is_away() -> None:
    """Redis unreachable: each process still stops an address after 5 failures in a minute."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from devstack.procs import free_port
    from ingress.login_throttle import LoginThrottle

    away = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    now = [1000.0]
    throttle = LoginThrottle(away, clock=lambda: now[0])
    for _ in range(5):
        assert throttle.wait("203.0.113.9") == 0
        throttle.failed("203.0.113.9")
    assert 1 <= throttle.wait("203.0.113.9") <= 60 and throttle.wait("203.0.113.10") == 0
    now[0] += 61
    assert throttle.wait("203.0.113.9") == 0
