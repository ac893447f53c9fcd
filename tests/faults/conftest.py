"""The fault suite's own local stack (real processes, real signals) and the table it prints at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo import MongoClient

from devstack.procs import free_port
from devstack.stack import HOST, Stack
from tests.conftest import REAL_MONGO, REAL_REDIS, TUNING, clean_environ
from tests.faults.checks import Mailbox, queued
from tests.faults.report import Row, table
from tests.faults.stripe_proxy import StripeFront
from tests.support import wait_for

#: Payments per run (``FAULT_PAYMENTS``); CI runs the full 200: 720 signed deliveries of 260 events a run.
FAULT_PAYMENTS = int(os.environ.get("FAULT_PAYMENTS", "200"))

#: The test timings, with retry budgets that outlast the longest outage here (SMTP, 15 s).
#: Backoff is 100, 200, then 400 ms between attempts, so 60 retries span at least 23 s of
#: backoff alone (plus each attempt's own time: Stripe's tenacity retries, MongoDB's server
#: selection); an email attempt against a closed SMTP port takes about 1 s with the mailer's
#: own retries, and the sweep adds attempts to the same count, hence 100 for emails. The stream
#: asks again for a refund answered 5xx or lost every 0.25 s: refund rate limits out of its way.
FAULT_TUNING = {
    **TUNING,
    "RETRY_MAX_RETRIES": "60",
    "EMAIL_MAX_RETRIES": "100",
    "REFUND_RATE_LIMIT_PER_MINUTE": "1000",
    "REFUND_PAYMENT_RATE_LIMIT_PER_MINUTE": "1000",
}

#: The parts as ``Stack.start`` leaves them; each test starts with all of them alive.
PARTS = ("redis", "mongo", "stripe", "smtp", "ingress", "worker")

ROWS = pytest.StashKey[list[Row]]()


@pytest.fixture(scope="package")
def stripe_front() -> Iterator[StripeFront]:
    """Stripe's API as the apps see it: the local Stripe (on a port chosen here) with idempotency keys and faults."""
    front = StripeFront(f"http://{HOST}:{free_port()}").start()
    yield front
    front.stop()


@pytest.fixture(scope="package")
def fault_stack(tmp_path_factory: pytest.TempPathFactory, stripe_front: StripeFront) -> Iterator[Stack]:
    """A whole local stack for the fault runs alone, started once for the folder."""
    if REAL_REDIS or REAL_MONGO:
        pytest.skip("kills and restarts Redis and MongoDB, which it may only do to its own")
    overrides = {**FAULT_TUNING, "STRIPE_API_BASE": stripe_front.url}
    stack = Stack(tmp_path_factory.mktemp("faults"), clean_environ(), ingress_port=free_port(), overrides=overrides)
    stack.ports["stripe"] = stripe_front.upstream[1]
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def whole_stack(fault_stack: Stack, fault_redis: redis.Redis, stripe_front: StripeFront) -> Stack:
    """Every part alive and every queue empty: what an earlier test broke or left behind is undone first.

    A part a failed run did not restore is started again; retries stranded by a dead delay-queue
    consumer (``test_stranded_retries``) come back only when the worker restarts.
    """
    stripe_front.failing(0.0)
    for name in PARTS:
        child = fault_stack.children.get(name)
        embedded = name in ("ingress", "worker") or name in fault_stack.ports
        if embedded and (child is None or not child.alive()):
            fault_stack.restart_part(name)
    if queued(fault_redis)[1]:
        fault_stack.restart_part("worker")
    wait_for(lambda: not queued(fault_redis)[0], 60, "the queues left by the previous test to drain")
    return fault_stack


@pytest.fixture(scope="package")
def fault_db(fault_stack: Stack) -> Iterator[Any]:
    url = fault_stack.urls["mongo"]
    client: MongoClient[dict[str, Any]] = MongoClient(url, tz_aware=True, w="majority", journal=True)
    yield client[fault_stack.environ["MONGODB_DB"]]
    client.close()


@pytest.fixture(scope="package")
def fault_redis(fault_stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(fault_stack.urls["redis"])
    yield client
    client.close()


@pytest.fixture(scope="package")
def mailbox(fault_stack: Stack) -> Mailbox:
    return Mailbox(Path(fault_stack.mail_dir))


@pytest.fixture
def fault_rows(request: pytest.FixtureRequest) -> list[Row]:
    """Where each run records its row of the table."""
    return request.config.stash.setdefault(ROWS, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section(f"fault suite ({FAULT_PAYMENTS} payments a run)")
    for line in table(rows):
        terminalreporter.write_line(line)
