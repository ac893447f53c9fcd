"""Services for the tests: each suite starts its own on free ports and stops them.

``TEST_REDIS_URL`` / ``TEST_MONGODB_URI`` point the tests at real servers instead; nothing else
the developer's environment says (``REDIS_URL``, ``.env``) is ever used by a test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database

from adapters.mongo import connect
from adapters.settings import Settings, load_settings
from devstack.procs import free_port
from devstack.stack import Stack
from payments_ops.config import LOCAL_STRIPE_KEY

#: Small timings so retries, dead letters and recovery happen within seconds.
TUNING = {
    "RETRY_MIN_BACKOFF_MS": "100",
    "RETRY_MAX_BACKOFF_MS": "400",
    "RETRY_MAX_RETRIES": "2",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
    "BROKER_MAINTENANCE_CHANCE": "0",  # dead workers are found by RequeueDeadWorkers alone
    "EMAIL_MAX_RETRIES": "40",
    "NOTIFICATION_SWEEP_SECONDS": "1",
    "OPS_EMAIL": "ops@example.test",
    "WORKER_PROCESSES": "1",
    "WORKER_THREADS": "4",
    "LOG_LEVEL": "INFO",
}

REAL_REDIS = os.environ.get("TEST_REDIS_URL")
REAL_MONGO = os.environ.get("TEST_MONGODB_URI")


def clean_environ() -> dict[str, str]:
    """A clean configuration: a fresh database name, and the real servers the developer named."""
    env = {"APP_ENV": "test", "MONGODB_DB": f"test_{secrets.token_hex(4)}"}
    if REAL_REDIS:
        env["REDIS_URL"] = REAL_REDIS
    if REAL_MONGO:
        env["MONGODB_URI"] = REAL_MONGO
    return env


@pytest.fixture(scope="session")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis and MongoDB for integration tests (no ingress or worker process)."""
    stack = Stack(tmp_path_factory.mktemp("backing"), clean_environ())
    try:
        stack.start_parts(("redis", "mongo"))
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def settings(backing: Stack) -> Settings:
    env = {
        **TUNING,
        "REDIS_URL": backing.urls["redis"],
        "MONGODB_URI": backing.urls["mongo"],
        "MONGODB_DB": backing.environ["MONGODB_DB"],
        "STRIPE_SECRET_KEY": LOCAL_STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": "whsec_integration,whsec_rotated",
        "JWT_SECRET": "integration-secret",
        "WEBHOOK_MAX_BYTES": "4096",
    }
    return load_settings(env, dotenv=None)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database[Any]]:
    """The test database, emptied after each test."""
    database = connect(settings.mongodb_uri, settings.mongodb_db)
    yield database
    for name in database.list_collection_names():
        database.drop_collection(name)
    database.client.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole local stack as ``make run`` starts it, with test timings."""
    stack = Stack(tmp_path_factory.mktemp("stack"), clean_environ(), ingress_port=free_port(), overrides=TUNING)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
