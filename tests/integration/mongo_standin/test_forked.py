"""The snapshot written by a forked child holds the state at the fork, whatever changes after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.mongo_standin import forked, snapshot
from devstack.mongo_standin.backend import StandinClient


def test_the_child_writes_the_state_at_the_fork(tmp_path: Path) -> None:
    client = StandinClient()
    client.app.c.insert_one({"_id": 1, "n": 1})
    path = tmp_path / "snap.bson"
    writer = forked.start(client, path, journal=7)
    client.app.c.update_one({"_id": 1}, {"$set": {"n": 2}})  # after the cut: not in the file
    client.app.c.insert_one({"_id": 2})
    writer.wait()
    saved, journal = snapshot.load_state(path)
    assert list(saved.app.c.find()) == [{"_id": 1, "n": 1}]
    assert journal == 7
    assert client.app.c.find_one({"_id": 1}) == {"_id": 1, "n": 2}  # the parent's state is its own


def test_a_child_that_cannot_write_names_why(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the snapshot's folder should be
    writer = forked.start(StandinClient(), blocker / "snap.bson", journal=None)
    with pytest.raises(OSError, match=r"snapshot writer .* failed: FileExistsError"):
        writer.wait()
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(writer.pid, os.WNOHANG)
