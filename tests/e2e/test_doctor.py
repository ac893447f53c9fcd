"""``payments-ops doctor`` against a local stack of its own: all green, then each part broken in turn.

The stack is this module's (not the session's), since the tests break it: a webhook registration,
an index, the worker. Each test puts back what it broke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pymongo import MongoClient

from adapters.compat.dramatiq import current_millis
from adapters.indexes import ensure_all_indexes
from adapters.queue_health import WORKER_ID_PREFIX
from devstack.procs import free_port
from devstack.stack import HEARTBEATS, Stack
from tests.conftest import TUNING, clean_environ
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    "keys",
    "webhook endpoint",
    "webhook secret",
    "redis and mongodb",
    "workers",
    "queue signing",
    "smtp",
    "clock",
]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("doctor"), clean_environ(), ingress_port=free_port(), overrides=TUNING)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def doctor(stack: Stack, *args: str, **changes: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    """Run ``payments-ops doctor --json`` with the stack's configuration (``changes`` over it):
    the exit code, each check's finding by name, and the human output of a second run's lines."""
    env = {k: v for k, v in stack.app_env().items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"PUBLIC_URL": stack.urls["ingress"], "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)} | changes
    run = subprocess.run([sys.executable, "-m", "payments_ops", "doctor", "--json", *args], env=env, cwd=stack.var,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    body = json.loads(run.stdout)
    assert body["ok"] is (run.returncode == 0)
    findings = {f["check"]: f for f in body["checks"]}
    assert list(findings) == CHECKS
    return run.returncode, findings, run.stderr


def failing(findings: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, f in findings.items() if not f["ok"]]


def register(stack: Stack, url: str, events: list[str] | None = None) -> None:
    """Point the local Stripe's one webhook registration somewhere (``events``: only those types)."""
    form = [("url", url), ("secret", stack.webhook_secret)] + [("events[]", e) for e in events or []]
    request = urllib.request.Request(stack.urls["stripe"] + "/_config/webhooks/payments-pipeline",
                                     data=urllib.parse.urlencode(form).encode())  # fmt: skip
    with urllib.request.urlopen(request, timeout=5):
        pass


def test_all_green(own_stack: Stack) -> None:
    with_login = own_stack.urls["smtp"].replace("smtp://", "smtp://doctor:any-password@")  # the sink takes any
    code, findings, _ = doctor(own_stack, SMTP_URL=with_login)
    assert code == 0, {n: f["found"] for n, f in findings.items() if not f["ok"]}
    assert "/_config/webhooks" in findings["webhook endpoint"]["found"]
    assert "the endpoint signs with one of them" in findings["webhook secret"]["found"]
    assert "ran on worker-" in findings["queue signing"]["found"]
    assert "login accepted" in findings["smtp"]["found"]


def test_the_human_output_is_one_line_per_check(own_stack: Stack) -> None:
    env = {k: v for k, v in own_stack.app_env().items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"PUBLIC_URL": own_stack.urls["ingress"], "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    env["STRIPE_WEBHOOK_SECRET"] = "whsec_wrong"
    run = subprocess.run([sys.executable, "-m", "payments_ops", "doctor"], env=env, cwd=own_stack.var,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    heads = [line for line in lines if not line.startswith("      fix: ")]
    assert [line.split(":")[0].split(None, 1)[1] for line in heads] == CHECKS
    failed = lines.index(next(line for line in lines if line.startswith("FAIL  webhook secret")))
    assert lines[failed + 1].startswith("      fix: set STRIPE_WEBHOOK_SECRET")


def test_wrong_webhook_secret(own_stack: Stack) -> None:
    code, findings, _ = doctor(own_stack, STRIPE_WEBHOOK_SECRET="whsec_wrong")
    assert code == 1 and failing(findings) == ["webhook secret"]
    assert "refused a test event signed with secret 1 of 1 (400)" in findings["webhook secret"]["found"]
    assert "STRIPE_WEBHOOK_SECRET" in findings["webhook secret"]["fix"]


def test_ingress_with_the_right_secret_but_stripe_with_another(own_stack: Stack) -> None:
    """The ingress also takes a second secret doctor is given, but the endpoint signs with neither."""
    own_stack_secret = own_stack.webhook_secret
    register_other = [("url", own_stack.urls["ingress"] + "/api/webhooks/stripe"), ("secret", "whsec_elsewhere")]
    request = urllib.request.Request(own_stack.urls["stripe"] + "/_config/webhooks/payments-pipeline",
                                     data=urllib.parse.urlencode(register_other).encode())  # fmt: skip
    urllib.request.urlopen(request, timeout=5).close()
    try:
        code, findings, _ = doctor(own_stack, STRIPE_WEBHOOK_SECRET=own_stack_secret)
        assert code == 1 and failing(findings) == ["webhook secret"]
        assert "the endpoint signs with another one" in findings["webhook secret"]["found"]
    finally:
        register(own_stack, own_stack.urls["ingress"] + "/api/webhooks/stripe")


def test_missing_webhook_endpoint_then_missing_event_types(own_stack: Stack) -> None:
    url = own_stack.urls["ingress"] + "/api/webhooks/stripe"
    try:
        register(own_stack, "http://127.0.0.1:9/elsewhere")
        code, findings, _ = doctor(own_stack)
        assert code == 1 and "webhook endpoint" in failing(findings)
        assert f"no endpoint for {url}" in findings["webhook endpoint"]["found"]
        assert "/_config/webhooks/payments-pipeline" in findings["webhook endpoint"]["fix"]

        register(own_stack, url, ["payment_intent.succeeded", "payment_intent.payment_failed"])
        code, findings, _ = doctor(own_stack)
        assert code == 1 and failing(findings) == ["webhook endpoint"]
        found = findings["webhook endpoint"]["found"]
        assert "does not send 13 handled types" in found and "charge.refunded" in found
    finally:
        register(own_stack, url)


def test_missing_index(own_stack: Stack) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(own_stack.urls["mongo"])
    db = client[own_stack.app_env()["MONGODB_DB"]]
    try:
        db.payments.drop_index("created_recent")
        code, findings, _ = doctor(own_stack)
        assert code == 1 and failing(findings) == ["redis and mongodb"]
        assert "missing: payments.created_recent" in findings["redis and mongodb"]["found"]
        assert "restart the ingress or a worker" in findings["redis and mongodb"]["fix"]
    finally:
        ensure_all_indexes(db)
        client.close()


class RefuseEveryLogin:
    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)


def test_smtp_refusing_the_login(own_stack: Stack) -> None:
    port = free_port()
    controller = Controller(object(), hostname="127.0.0.1", port=port, authenticator=RefuseEveryLogin(),
                            auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        code, findings, _ = doctor(own_stack, SMTP_URL=f"smtp://someone:wrong@127.0.0.1:{port}")
        assert code == 1 and failing(findings) == ["smtp"]
        assert "SMTPAuthenticationError" in findings["smtp"]["found"] and "535" in findings["smtp"]["found"]
    finally:
        controller.stop()


def _worker_beats(stack: Stack) -> list[Any]:
    client = redis.Redis.from_url(stack.urls["redis"])
    try:
        cutoff = current_millis() - int(TUNING["BROKER_HEARTBEAT_TIMEOUT_MS"])
        beats: list[Any] = client.zrangebyscore(HEARTBEATS, cutoff, "+inf")
        return [beat for beat in beats if beat.startswith(WORKER_ID_PREFIX.encode())]
    finally:
        client.close()


def test_wrong_queue_signing_key_on_the_worker_side(own_stack: Stack) -> None:
    own_stack.stop_part("worker")
    overrides = own_stack.overrides
    own_stack.overrides = {**overrides, "QUEUE_SIGNING_KEY": "not-the-key-the-others-sign-with"}
    try:
        own_stack.start_worker()
        own_stack.overrides = overrides  # doctor signs with the key the ingress has
        code, findings, _ = doctor(own_stack)
        assert code == 1 and failing(findings) == ["queue signing"]
        assert "a worker refused probe" in findings["queue signing"]["found"]
        assert "QUEUE_SIGNING_KEY" in findings["queue signing"]["fix"]
    finally:
        own_stack.stop_part("worker")
        own_stack.overrides = overrides
        own_stack.start_worker()


def test_no_worker_running(own_stack: Stack) -> None:
    own_stack.stop_part("worker")
    try:
        wait_for(lambda: not _worker_beats(own_stack), 15, "the worker's heartbeat to age past the timeout")
        code, findings, _ = doctor(own_stack, "--wait", "1")
        assert code == 1 and failing(findings) == ["workers", "queue signing"]
        assert findings["workers"]["found"].startswith("no worker heartbeat")
        assert "python -m workers" in findings["workers"]["fix"]
        assert "not run within 1 s" in findings["queue signing"]["found"]
    finally:
        own_stack.start_worker()


def test_stripe_not_answering(own_stack: Stack) -> None:
    """Each check that asks Stripe fails naming the error; the others still run and pass."""
    code, findings, _ = doctor(own_stack, STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}")
    assert code == 1 and failing(findings) == ["webhook endpoint", "webhook secret", "clock"]
    assert "Connection" in findings["webhook endpoint"]["found"]


def test_with_nothing_set_it_checks_the_local_stack(own_stack: Stack, tmp_path: Path) -> None:
    """As an operator runs it beside ``make run``: the stack's var/stack.json gives everything, its ingress the URL."""
    (tmp_path / "var").symlink_to(own_stack.var)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "payments_ops", "doctor"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{own_stack.urls['ingress']}/api/webhooks/stripe sends all 15" in run.stdout
    assert f"ok    smtp: {own_stack.urls['smtp'].removeprefix('smtp://')}: connected" in run.stdout
