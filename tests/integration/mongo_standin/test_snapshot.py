"""The stand-in's snapshot: state survives a restart, and is saved periodically while running."""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo.errors import DuplicateKeyError

from devstack.mongo_standin import snapshot

from .conftest import Standin, new_client

pytestmark = pytest.mark.standin


def test_snapshot_survives_restart(tmp_path: Path, standin_factory: Callable[..., Standin]) -> None:
    """Data, unique indexes and BSON types written before SIGTERM are there after a restart."""
    state = tmp_path / "state" / "mongo.bson"
    first = standin_factory("--snapshot", str(state))
    when, ref = datetime.datetime(2024, 2, 29, 23, 59, 59, 999000), ObjectId()
    client = new_client(first.uri)
    try:
        client.app.users.create_index("email", unique=True)
        client.app.users.insert_one({"_id": "u1", "email": "a", "at": when, "ref": ref, "big": Int64(7)})
        client.app.create_collection("empty")
    finally:
        client.close()
    assert first.child.stop() == 0
    assert state.exists()

    second = standin_factory("--snapshot", str(state))
    client = new_client(second.uri)
    try:
        doc = client.app.users.find_one({"_id": "u1"})
        assert doc == {"_id": "u1", "email": "a", "at": when, "ref": ref, "big": 7}
        assert type(doc["big"]) is Int64 and type(doc["ref"]) is ObjectId
        assert "email_1" in {ix["name"] for ix in client.app.users.list_indexes()}
        with pytest.raises(DuplicateKeyError):
            client.app.users.insert_one({"email": "a"})
        assert sorted(client.app.list_collection_names()) == ["empty", "users"]
    finally:
        client.close()


def test_snapshot_is_written_periodically(tmp_path: Path, standin_factory: Callable[..., Standin]) -> None:
    """With something changed, the snapshot file appears within the interval, the server still running."""
    state = tmp_path / "mongo.bson"
    standin = standin_factory("--snapshot", str(state), "--snapshot-interval", "0.2")
    client = new_client(standin.uri)
    try:
        client.app.events.insert_one({"_id": "evt_1"})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if state.exists() and snapshot.load(state).app.events.find_one({"_id": "evt_1"}):
                break
            time.sleep(0.05)
        else:
            pytest.fail("no periodic snapshot with the new document")
        assert standin.child.alive()
        client.app.events.insert_one({"_id": "evt_2"})
        deadline = time.monotonic() + 5
        while snapshot.load(state).app.events.count_documents({}) < 2:
            assert time.monotonic() < deadline, "the second change never reached the snapshot"
            time.sleep(0.05)
    finally:
        client.close()


def test_sigint_stops_cleanly_with_snapshot(tmp_path: Path, standin_factory: Callable[..., Standin]) -> None:
    """SIGINT stops the server with exit code 0 after writing the snapshot."""
    state = tmp_path / "mongo.bson"
    standin = standin_factory("--snapshot", str(state), "--snapshot-interval", "60")
    client = new_client(standin.uri)
    try:
        client.app.things.insert_one({"_id": 1})
    finally:
        client.close()
    standin.child.signal(signal.SIGINT)
    assert standin.child.proc is not None
    assert standin.child.proc.wait(10) == 0
    assert snapshot.load(state).app.things.find_one({"_id": 1}) == {"_id": 1}
