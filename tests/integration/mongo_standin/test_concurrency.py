"""Eight client processes racing on the same documents: every transition and key wins exactly once."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from typing import Any

from pymongo.database import Database

from . import race_workers

WORKERS = 8


def _race(target: Callable[..., None], uri: str, db: str, items: list[Any]) -> dict[int, Any]:
    """Run ``target`` in WORKERS spawned processes started together; return each one's result."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(uri, db, items, w, start, out)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
            proc.close()
        out.close()
        out.join_thread()
    errors = [r for r in results if r[0] != "ok"]
    assert not errors, errors
    return {worker: value for _, worker, value in results}


def test_racing_conditional_updates_transition_each_document_once(mongo_uri: str, mongo_db: Database[Any]) -> None:
    """Eight processes racing find_one_and_update on status win each document exactly once."""
    ids = list(range(40))
    mongo_db.jobs.insert_many([{"_id": i, "status": "pending"} for i in ids])
    won = _race(race_workers.claim_transitions, mongo_uri, mongo_db.name, ids)
    wins = Counter(i for worker_wins in won.values() for i in worker_wins)
    assert sorted(wins) == ids
    assert set(wins.values()) == {1}
    for worker, worker_wins in won.items():
        for i in worker_wins:
            assert mongo_db.jobs.find_one({"_id": i}) == {"_id": i, "status": "done", "by": worker}


def test_racing_unique_inserts_let_exactly_one_win(mongo_uri: str, mongo_db: Database[Any]) -> None:
    """Eight processes inserting the same unique keys: one insert per key wins, the rest get DuplicateKeyError."""
    mongo_db.tokens.create_index("key", unique=True)
    keys = [f"k{i}" for i in range(25)]
    results = _race(race_workers.insert_unique, mongo_uri, mongo_db.name, keys)
    winners = Counter(key for inserted, _ in results.values() for key in inserted)
    assert sorted(winners) == sorted(keys)
    assert set(winners.values()) == {1}
    assert sum(duplicates for _, duplicates in results.values()) == len(keys) * (WORKERS - 1)
    assert mongo_db.tokens.count_documents({}) == len(keys)
