"""Fixtures for the MongoDB stand-in tests: a server on a free port, a client, a fresh database.

``TEST_MONGODB_URI`` points the tests at a real MongoDB instead; tests marked ``standin`` (the
stand-in's own features: snapshots, restarts) are then skipped.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from devstack.procs import Child, free_port, python_module

HOST = "127.0.0.1"
REAL_MONGO = os.environ.get("TEST_MONGODB_URI")


@dataclass
class Standin:
    """A running stand-in child process."""

    child: Child
    port: int

    @property
    def uri(self) -> str:
        return f"mongodb://{HOST}:{self.port}"


def start_standin(name: str, log_dir: Path, *args: str) -> Standin:
    """Start ``python -m devstack.mongo_standin`` on a free port and wait until it accepts connections."""
    port = free_port()
    argv = python_module("devstack.mongo_standin", "--host", HOST, "--port", str(port), *args)
    child = Child(name, argv, log_dir).start()
    try:
        child.wait_tcp(HOST, port, timeout=15.0)
    except BaseException:
        child.stop()
        raise
    return Standin(child, port)


def new_client(uri: str, **kwargs: Any) -> MongoClient[dict[str, Any]]:
    """A MongoClient that fails fast when the server is missing."""
    return MongoClient(uri, serverSelectionTimeoutMS=5000, **kwargs)


@pytest.fixture(autouse=True)
def _skip_standin_features_on_real_mongo(request: pytest.FixtureRequest) -> None:
    if REAL_MONGO and request.node.get_closest_marker("standin"):
        pytest.skip("tests a feature of the stand-in itself; TEST_MONGODB_URI is set")


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of the server under test: ``TEST_MONGODB_URI``, or a stand-in started for the session."""
    if REAL_MONGO:
        yield REAL_MONGO
        return
    standin = start_standin("mongo-standin", tmp_path_factory.mktemp("mongo_standin"))
    try:
        yield standin.uri
    finally:
        standin.child.stop()


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    """One MongoClient for the session (closed at the end)."""
    client = new_client(mongo_uri)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db(mongo_client: MongoClient[dict[str, Any]], request: pytest.FixtureRequest) -> Iterator[Database[Any]]:
    """A database of the test's own, freshly named, dropped afterwards."""
    slug = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    name = f"t_{slug}_{uuid.uuid4().hex[:8]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture
def standin_factory(tmp_path: Path) -> Iterator[Callable[..., Standin]]:
    """Starts extra stand-ins (``factory(*cli_args)``), logs in the test's tmp dir; stops them after."""
    started: list[Standin] = []

    def factory(*args: str) -> Standin:
        standin = start_standin(f"mongo-standin-{len(started)}", tmp_path / "logs", *args)
        started.append(standin)
        return standin

    yield factory
    for standin in started:
        standin.child.stop()
