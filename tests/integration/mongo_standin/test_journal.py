"""The stand-in's journal: what it acknowledged survives SIGKILL, replayed once, compacted into the snapshot."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bson
import mongomock
import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError
from pymongo.write_concern import WriteConcern

from devstack.mongo_standin import journal, snapshot
from devstack.mongo_standin.commands import Engine
from devstack.mongo_standin.server import StandinServer
from devstack.procs import port_open

from .conftest import Standin, new_client

pytestmark = pytest.mark.standin

JOURNALED = WriteConcern(w="majority", j=True)
T0 = datetime.datetime(2024, 5, 1, 12, 0, 0)


def _ms(moment: datetime.datetime) -> datetime.datetime:
    """What BSON keeps of a datetime: milliseconds."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _kill(standin: Standin) -> None:
    """SIGKILL the stand-in and wait until it is gone."""
    assert standin.child.proc is not None
    standin.child.signal(signal.SIGKILL)
    assert standin.child.proc.wait(10) == -signal.SIGKILL


def _contents(db: Database[Any], name: str) -> list[bytes]:
    """A collection's documents in natural order, as BSON (so types and field order count)."""
    return [bson.encode(doc) for doc in db[name].find()]


def _encoded(model: dict[Any, dict[str, Any]]) -> list[bytes]:
    return [bson.encode(doc) for doc in model.values()]


def _mixed_writes(db: Database[Any], count: int, seed: int) -> dict[str, dict[Any, dict[str, Any]]]:
    """``count`` acknowledged writes of many kinds; returns what the client was told is stored."""
    rng = random.Random(seed)
    payments: dict[Any, dict[str, Any]] = {}
    sessions: dict[Any, dict[str, Any]] = {}
    next_id = 0

    def new_payment() -> dict[str, Any]:
        nonlocal next_id
        next_id += 1
        when = _ms(T0 + datetime.timedelta(seconds=next_id, microseconds=next_id * 1001))
        return {"_id": f"p{next_id}", "ref": f"r{next_id}", "amount": Int64(100 * next_id), "at": when, "events": []}

    for i in range(count):
        kind = rng.choice(["insert", "insert", "update", "upsert", "delete", "insert_many"]) if i > 3 else "insert"
        if i == count // 3:
            db.payments.create_index("ref", unique=True)
        if i == count // 2:
            db.sessions.create_index("key", unique=True, name="key_unique")
        if kind == "insert":
            doc = new_payment()
            db.payments.insert_one(dict(doc))
            payments[doc["_id"]] = doc
        elif kind == "update" and payments:
            doc_id = rng.choice(list(payments))
            result = db.payments.update_one(
                {"_id": doc_id}, {"$inc": {"amount": Int64(5)}, "$set": {"status": "paid"}, "$push": {"events": i}}
            )
            assert result.modified_count == 1
            doc = payments[doc_id]
            doc["amount"] = Int64(doc["amount"] + 5)
            doc["status"] = "paid"
            doc["events"].append(i)
        elif kind == "upsert":
            # No _id in the filter: the server draws it; $currentDate: the server's clock.
            after = db.sessions.find_one_and_update(
                {"key": f"k{rng.randrange(15)}"},
                {"$inc": {"hits": 1}, "$currentDate": {"seen": True}, "$setOnInsert": {"first": i}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            assert after is not None and isinstance(after["_id"], ObjectId)
            sessions.pop(after["_id"], None)  # still where it was in natural order: keep the key's slot
            sessions[after["_id"]] = after
        elif kind == "delete" and payments:
            doc_id = rng.choice(list(payments))
            assert db.payments.delete_one({"_id": doc_id}).deleted_count == 1
            del payments[doc_id]
        elif kind == "insert_many" and payments:
            first, second = new_payment(), new_payment()
            duplicate = dict(payments[rng.choice(list(payments))])
            with pytest.raises(BulkWriteError) as caught:
                db.payments.insert_many([dict(first), duplicate, dict(second)], ordered=False)
            assert caught.value.details["nInserted"] == 2
            payments[first["_id"]] = first
            payments[second["_id"]] = second
        else:
            doc = new_payment()
            db.payments.insert_one(dict(doc))
            payments[doc["_id"]] = doc
    return {"payments": payments, "sessions": sessions}


def _natural_sessions(db: Database[Any], model: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """The sessions model in the server's natural order (upserts update in place, insert at the end)."""
    order = [doc["_id"] for doc in db.sessions.find({}, {"_id": 1})]
    assert sorted(order, key=str) == sorted(model, key=str)
    return {doc_id: model[doc_id] for doc_id in order}


def test_acknowledged_writes_survive_sigkill(tmp_path: Path, standin_factory: Callable[..., Standin]) -> None:
    """300 journaled writes of mixed kinds, SIGKILL right after the last answer: all of them are there."""
    state = tmp_path / "mongo.bson"
    first = standin_factory("--snapshot", str(state), "--snapshot-interval", "600")
    client = new_client(first.uri)
    try:
        db = client.get_database("app", write_concern=JOURNALED)
        model = _mixed_writes(db, 300, seed=7)
        sessions_in_order = _natural_sessions(db, model["sessions"])
        _kill(first)
    finally:
        client.close()
    assert not state.exists(), "no snapshot was due: the journal alone must hold the writes"
    assert journal.journal_files(state)

    second = standin_factory("--snapshot", str(state))
    client = new_client(second.uri)
    try:
        db = client.app
        assert _contents(db, "payments") == _encoded(model["payments"])
        assert _contents(db, "sessions") == _encoded(sessions_in_order)
        assert {ix["name"] for ix in db.payments.list_indexes()} == {"_id_", "ref_1"}
        assert {ix["name"] for ix in db.sessions.list_indexes()} == {"_id_", "key_unique"}
    finally:
        client.close()
    # The replayed journal went into a snapshot before the stand-in listened.
    assert state.exists() and not journal.journal_files(state)


def test_torn_last_record_is_ignored(tmp_path: Path, standin_factory: Callable[..., Standin]) -> None:
    """A record cut short by a crash is dropped at start; every record before it is replayed."""
    state = tmp_path / "mongo.bson"
    first = standin_factory("--snapshot", str(state), "--snapshot-interval", "600")
    client = new_client(first.uri)
    try:
        db = client.get_database("app", write_concern=JOURNALED)
        db.things.insert_many([{"_id": i, "n": Int64(i)} for i in range(20)])
        db.things.update_one({"_id": 3}, {"$set": {"n": "three"}})
        db.things.insert_one({"_id": "last", "payload": "x" * 500})
        _kill(first)
    finally:
        client.close()
    [(_, path)] = journal.journal_files(state)
    records, ignored = journal.read_records(path)
    assert (len(records), ignored) == (3, 0)
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(size - 200)  # in the middle of the last record

    second = standin_factory("--snapshot", str(state))
    client = new_client(second.uri)
    try:
        docs = list(client.app.things.find())
        assert [doc["_id"] for doc in docs] == list(range(20))
        assert docs[3] == {"_id": 3, "n": "three"} and type(docs[4]["n"]) is Int64
    finally:
        client.close()
    assert "ignored" in second.child.log_tail()


def test_snapshot_compacts_the_journal(tmp_path: Path, standin_factory: Callable[..., Standin]) -> None:
    """After a snapshot the journal starts a new file; SIGKILL later loses nothing and applies nothing twice."""
    state = tmp_path / "mongo.bson"
    first = standin_factory("--snapshot", str(state), "--snapshot-interval", "0.2")
    client = new_client(first.uri)
    try:
        db = client.get_database("app", write_concern=JOURNALED)
        db.counters.insert_one({"_id": "c", "n": Int64(0)})
        for _ in range(50):
            db.counters.update_one({"_id": "c"}, {"$inc": {"n": Int64(1)}})
        # Wait for a snapshot holding the increments so far: its journal number is past file 1.
        first.child.wait_until(
            lambda: state.exists() and snapshot.load_state(state)[1] >= 2, 10, "a snapshot with the journal"
        )
        # The files the snapshot holds are removed just after it is in place (not before: a crash
        # between the two must find them).
        first.child.wait_until(lambda: not journal.journal_path(state, 1).exists(), 10, "journal file 1 removed")
        for _ in range(30):
            db.counters.update_one({"_id": "c"}, {"$inc": {"n": Int64(1)}})
        _kill(first)
    finally:
        client.close()
    second = standin_factory("--snapshot", str(state))
    client = new_client(second.uri)
    try:
        assert client.app.counters.find_one({"_id": "c"}) == {"_id": "c", "n": 80}
        assert type(client.app.counters.find_one({"_id": "c"}, {"n": 1})["n"]) is Int64  # type: ignore[index]
    finally:
        client.close()


# --- in-process: the replay reproduces the engine's state exactly --------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime.datetime]]:
    """mongomock's clock (TTL expiry, $currentDate), set by the test: ``clock[0] = ...``."""
    now = [T0]
    monkeypatch.setattr(mongomock, "utcnow", lambda: now[0])
    yield now


def _recovered(state: Path) -> tuple[Engine, journal.Journal]:
    client, log = journal.recover(state)
    return Engine(client, log), log


def _run(engine: Engine, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    reply = engine.execute(db, cmd)
    assert reply["ok"] == 1.0, reply
    return reply


def test_replay_reproduces_every_kind_of_change(tmp_path: Path, clock: list[datetime.datetime]) -> None:
    """Generated _ids, the clock, TTL expiry, $sample, catalog changes: replay gives the same bytes."""
    state = tmp_path / "mongo.bson"
    engine, log = _recovered(state)
    ttl = {"key": {"at": 1}, "name": "ttl", "expireAfterSeconds": 60}
    commands: list[tuple[str, dict[str, Any]]] = [
        ("app", {"insert": "orders", "documents": [{"_id": 1, "n": Int64(1)}, {"n": 2}, {"n": 3.5}]}),
        (
            "app",
            {"update": "orders", "updates": [{"q": {"k": "a"}, "u": {"$currentDate": {"at": True}}, "upsert": True}]},
        ),
        ("app", {"update": "orders", "updates": [{"q": {}, "u": {"$inc": {"n": 1}}, "multi": True}]}),
        ("app", {"update": "orders", "updates": [{"q": {"_id": 1}, "u": [{"$set": {"m": {"$add": ["$n", 1]}}}]}]}),
        ("app", {"update": "orders", "updates": [{"q": {"_id": 1}, "u": {"_id": 1, "replaced": True}}]}),
        (
            "app",
            {
                "createIndexes": "orders",
                "indexes": [
                    {
                        "key": {"k": 1},
                        "name": "k_1",
                        "unique": True,
                        "partialFilterExpression": {"k": {"$type": "string"}},
                    }
                ],
            },
        ),
        ("app", {"insert": "orders", "documents": [{"_id": 2, "k": "a"}, {"_id": 3}, {"k": "c"}], "ordered": False}),
        ("app", {"findAndModify": "orders", "query": {"_id": 3}, "remove": True}),
        ("app", {"findAndModify": "orders", "query": {"k": "b"}, "update": {"$setOnInsert": {"z": 1}}, "upsert": True}),
        ("app", {"insert": "orders", "documents": [{"_id": {"a": 1, "b": [2]}, "v": 1}]}),
        ("app", {"delete": "orders", "deletes": [{"q": {"_id": {"a": 1, "b": [2]}}, "limit": 1}]}),
        ("app", {"insert": "orders", "documents": [{"_id": {"a": 1, "b": [2]}, "v": 2}]}),
        ("app", {"delete": "orders", "deletes": [{"q": {"n": {"$gte": 4}}, "limit": 0}]}),
        ("app", {"create": "empty"}),
        ("app", {"createIndexes": "events", "indexes": [ttl]}),
        ("app", {"insert": "events", "documents": [{"_id": "x", "at": T0}, {"_id": "y", "at": T0}]}),
        ("app", {"insert": "events", "documents": [{"_id": "z", "at": T0 + datetime.timedelta(hours=1)}]}),
        ("app", {"aggregate": "orders", "pipeline": [{"$sample": {"size": 3}}, {"$out": "sampled"}], "cursor": {}}),
        ("app", {"insert": "tmp", "documents": [{"_id": 1}]}),
        ("admin", {"renameCollection": "app.sampled", "to": "app.archive"}),
        ("admin", {"renameCollection": "app.tmp", "to": "app.archive", "dropTarget": True}),
        ("app", {"dropIndexes": "orders", "index": "k_1"}),
        ("app", {"drop": "empty"}),
        ("other", {"insert": "c", "documents": [{"_id": 1}]}),
        ("other", {"dropDatabase": 1}),
        ("other", {"insert": "c", "documents": [{"_id": 2}]}),
    ]
    for db, cmd in commands:
        _run(engine, db, cmd)
    # Writes that fail still may change something (mongomock applies $set before failing on $inc).
    half = engine.execute(
        "app", {"update": "orders", "updates": [{"q": {"k": "a"}, "u": {"$set": {"s": "x", "t": 1}, "$inc": {"s": 1}}}]}
    )
    assert half.get("writeErrors")
    # A minute later: the next command expires x and y first; re-upserting x puts it last.
    clock[0] = T0 + datetime.timedelta(seconds=61)
    _run(engine, "app", {"update": "events", "updates": [{"q": {"_id": "x"}, "u": {"$set": {"v": 1}}, "upsert": True}]})
    assert [d["_id"] for d in _run(engine, "app", {"find": "events"})["cursor"]["firstBatch"]] == ["z", "x"]
    # Reads that change nothing journal nothing.
    end = log.end
    _run(engine, "app", {"find": "orders", "filter": {}})
    _run(engine, "app", {"count": "orders"})
    assert log.end == end
    log.sync()
    log.close()

    replayed, replayed_log = journal.recover(state)
    assert replayed_log.replayed == sum(len(journal.read_records(p)[0]) for _, p in journal.journal_files(state)) > 20
    assert snapshot.dump(replayed) == snapshot.dump(engine.client)
    # TTL expiry after the replay is the clock's business, as for a snapshot.
    assert replayed.app.events.count_documents({}) == 2


def test_killed_between_snapshot_and_journal_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot written, old journal file not yet deleted: its records are not applied a second time.
    Journal rotated, snapshot not written: both files are replayed."""
    state = tmp_path / "mongo.bson"
    engine, log = _recovered(state)
    server = StandinServer(engine, snapshot_path=state)

    def inc(times: int) -> None:
        for _ in range(times):
            _run(
                engine, "app", {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}, "upsert": True}]}
            )

    inc(5)
    monkeypatch.setattr(journal.Journal, "remove_before", lambda self, number: None)
    assert asyncio.run(server.save_snapshot(force=True))
    assert [n for n, _ in journal.journal_files(state)] == [1]  # covered by the snapshot, still there
    inc(3)
    log.sync()
    client, replay = journal.recover(state)
    assert client.app.c.find_one({"_id": 1}) == {"_id": 1, "n": 8}
    assert replay.replayed == 3  # file 2 only

    # Now the other window: rotated (file 3 gets the next records) but the snapshot never written.
    monkeypatch.setattr(snapshot, "write_atomic", lambda path, data: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        asyncio.run(server.save_snapshot(force=True))
    inc(4)
    log.sync()
    log.close()
    assert [n for n, _ in journal.journal_files(state)] == [1, 2, 3]
    client, replay = journal.recover(state)
    assert client.app.c.find_one({"_id": 1}) == {"_id": 1, "n": 12}
    assert replay.replayed == 3 + 4  # files 2 and 3


def test_record_failing_its_checksum_ends_the_replay(tmp_path: Path) -> None:
    """A garbled last record (length intact, bytes changed) is ignored like a torn one."""
    state = tmp_path / "mongo.bson"
    engine, log = _recovered(state)
    for i in range(3):
        _run(engine, "app", {"insert": "t", "documents": [{"_id": i, "s": "abcdef"}]})
    log.sync()
    log.close()
    path = journal.journal_path(state, 1)
    data = bytearray(path.read_bytes())
    data[data.rindex(b"abcdef")] ^= 0x01
    path.write_bytes(bytes(data))
    assert journal.read_records(path)[0][-1]["ops"][0]["append"][0]["_id"] == 1
    client, _ = journal.recover(state)
    assert [d["_id"] for d in client.app.t.find()] == [0, 1]


def test_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiting reply gets an fsync covering its record at once; concurrent waiters share fsyncs;
    with nobody waiting, the journal is still fsynced within the commit interval."""
    state = tmp_path / "mongo.bson"
    engine, log = _recovered(state)
    synced: list[int] = []
    fdatasync = os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        fdatasync(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)

    async def scenario() -> None:
        committer = journal.GroupCommitter(log, interval=30)  # only waiters trigger fsyncs here
        commits = asyncio.create_task(committer.run())
        _run(engine, "app", {"insert": "t", "documents": [{"_id": 0}]})
        await asyncio.wait_for(committer.wait(log.end), 5)
        assert log.durable == log.end and synced[-1] >= log.end

        async def writer(i: int) -> None:
            _run(engine, "app", {"insert": "t", "documents": [{"_id": i}]})
            await committer.wait(log.end)

        rounds = committer.syncs
        await asyncio.wait_for(asyncio.gather(*(writer(i) for i in range(1, 51))), 10)
        assert log.durable == log.end
        assert committer.syncs - rounds <= 3, "50 waiting writers should share a few fsyncs"
        commits.cancel()
        await committer.flush()

        quick = journal.GroupCommitter(log, interval=0.1)
        commits = asyncio.create_task(quick.run())
        _run(engine, "app", {"insert": "t", "documents": [{"_id": "unwaited"}]})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while log.durable < log.end:
            assert loop.time() < deadline, "not fsynced without a waiter"
            await asyncio.sleep(0.01)
        commits.cancel()
        await quick.flush()

    asyncio.run(scenario())
    log.close()


def test_journaled_reply_waits_for_the_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fsync held up, a ``j: true`` insert is done in memory but unanswered; a ``w: 1`` insert is
    answered meanwhile. Released, the first is answered with its record durable."""
    state = tmp_path / "mongo.bson"
    engine, log = _recovered(state)
    server = StandinServer(engine, "127.0.0.1", 0, state, snapshot_interval=600)
    gate, syncing = threading.Event(), threading.Event()
    fdatasync = os.fdatasync

    def held_fdatasync(fd: int) -> None:
        syncing.set()
        assert gate.wait(30)
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", held_fdatasync)
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    client = None
    try:
        _wait_for(lambda: server.port != 0 and port_open("127.0.0.1", server.port), "the server to listen")
        client = new_client(f"mongodb://127.0.0.1:{server.port}")
        client.app.t.find_one({})  # connected
        answered = threading.Event()

        def journaled_insert() -> None:
            client.get_database("app", write_concern=JOURNALED).t.insert_one({"_id": "j"})
            answered.set()

        writer = threading.Thread(target=journaled_insert)
        writer.start()
        _wait_for(lambda: engine.execute("app", {"count": "t", "query": {"_id": "j"}})["n"] == 1, "the insert to run")
        journaled_end = log.end
        _wait_for(syncing.is_set, "an fsync to start")
        client.app.t.insert_one({"_id": "w1"})  # w: 1 -- answered while the fsync is held up
        assert not answered.is_set()
        gate.set()
        writer.join(10)
        assert answered.is_set() and log.durable >= journaled_end
    finally:
        gate.set()
        if client is not None:
            client.close()
        if loops:
            loops[0].call_soon_threadsafe(server.stop)
        thread.join(10)
    assert not journal.journal_files(state), "the final snapshot compacts the journal"
    assert [d["_id"] for d in snapshot.load(state).app.t.find()] == ["j", "w1"]


def _wait_for(ready: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
