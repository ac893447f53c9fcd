"""Writes per second through a stand-in child process, with and without its journal (not a test).

``python -m tests.integration.mongo_standin.measure_journal [--ops N]`` starts a stand-in without
a snapshot (no journal), then one with a snapshot (journal on), and times ``insert_one`` and
``find_one_and_update`` ($inc on one of 100 documents) from 1 and from 8 client threads, with the
project's write concern (``w: majority, j: true``: answered once the journal is fsynced) and with
the driver's default (``w: 1``: answered at once, journaled within 100 ms). Each figure is the
median of ``--rounds`` runs (a shared 2-core VM is noisy).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bson.objectid import ObjectId
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.write_concern import WriteConcern

from .conftest import start_standin

JOURNALED = WriteConcern(w="majority", j=True)
DEFAULT = WriteConcern()


def _rate(threads: int, ops: int, work: Callable[[int], object]) -> float:
    """Operations per second of ``ops`` calls of ``work`` spread over ``threads`` threads."""
    per_thread = ops // threads
    start = threading.Barrier(threads + 1)

    def run(worker: int) -> None:
        start.wait()
        for i in range(per_thread):
            work(worker * per_thread + i)

    pool = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    return per_thread * threads / (time.perf_counter() - began)


def _insert(docs: Collection[dict[str, Any]], i: int) -> None:
    docs.insert_one({"i": i, "payload": "x" * 200})


def _increment(counters: Collection[dict[str, Any]], i: int) -> None:
    counters.find_one_and_update({"_id": i % 100}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER)


def measure(uri: str, ops: int, label: str, rounds: int = 3) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, maxPoolSize=16)
    try:
        for concern_name, concern in (("w:majority,j:true", JOURNALED), ("w:1", DEFAULT)):
            db = client.get_database(f"bench_{ObjectId()}", write_concern=concern)
            docs: Collection[dict[str, Any]] = db.docs
            counters: Collection[dict[str, Any]] = db.counters
            counters.insert_many([{"_id": i, "n": 0} for i in range(100)])
            _rate(8, 400, functools.partial(_insert, docs))  # warm up: connections, code paths
            for threads in (1, 8):
                inserts = statistics.median(
                    _rate(threads, ops, functools.partial(_insert, docs)) for _ in range(rounds)
                )
                updates = statistics.median(
                    _rate(threads, ops, functools.partial(_increment, counters)) for _ in range(rounds)
                )
                print(
                    f"{label:<22} {concern_name:<18} {threads} thread(s): "
                    f"insert_one {inserts:7.0f}/s   find_one_and_update {updates:7.0f}/s",
                    flush=True,
                )
            client.drop_database(db.name)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=2000, help="operations per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure, median kept (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        for label, cli in (
            ("no journal", ()),
            ("journal", ("--snapshot", str(Path(tmp) / "state.bson"), "--snapshot-interval", "5")),
        ):
            standin = start_standin(f"standin-{label.replace(' ', '-')}", logs, *cli)
            try:
                measure(standin.uri, args.ops, label, args.rounds)
            finally:
                standin.child.stop()


if __name__ == "__main__":
    main()
