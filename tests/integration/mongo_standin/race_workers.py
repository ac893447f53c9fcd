"""Worker functions for the multi-process race tests (a module of its own: spawn imports it)."""

from __future__ import annotations

import random
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError


def claim_transitions(uri: str, db: str, ids: list[int], worker: int, start: Barrier, out: Queue[Any]) -> None:
    """Try to move every document pending -> done; report the ids this worker won."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        jobs = client[db].jobs
        jobs.find_one({})  # connect before the start line
        order = list(ids)
        random.Random(worker).shuffle(order)
        start.wait(timeout=30)
        won = [
            i
            for i in order
            if jobs.find_one_and_update({"_id": i, "status": "pending"}, {"$set": {"status": "done", "by": worker}})
            is not None
        ]
        out.put(("ok", worker, won))
    except Exception as exc:
        out.put(("error", worker, repr(exc)))
    finally:
        client.close()


def insert_unique(uri: str, db: str, keys: list[str], worker: int, start: Barrier, out: Queue[Any]) -> None:
    """Try to insert every key; report (keys inserted, number of DuplicateKeyErrors)."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        tokens = client[db].tokens
        tokens.find_one({})
        start.wait(timeout=30)
        inserted: list[str] = []
        duplicates = 0
        for key in keys:
            try:
                tokens.insert_one({"key": key, "by": worker})
                inserted.append(key)
            except DuplicateKeyError:
                duplicates += 1
        out.put(("ok", worker, (inserted, duplicates)))
    except Exception as exc:
        out.put(("error", worker, repr(exc)))
    finally:
        client.close()
