"""The MongoDB stand-in's CPU per command on the payment worker's mix: ``python -m bench.child.standin_mix``.

Starts ``python -m devstack.mongo_standin`` (with a snapshot, hence the journal and group commit
the local stack runs) on a free port, sends it the commands one webhook costs the worker (insert a
payment, record the event, move the payment by its intent id, upsert the enrollment on its unique
index, bulk-upsert two notifications, update by ``_id`` twice, read by ``_id``) with a tz-aware
client and majority/journaled writes, and prints the server's CPU seconds (``/proc``, user +
system) per command. CPU, not wall time: it stays meaningful on a machine busy with other work.

``--root DIR`` (repeatable) runs the stand-in from another checkout, e.g. the previous commit
unpacked with ``git archive HEAD devstack | tar -x -C /tmp/base``; runs alternate between roots.
``--profile FILE`` runs the (first root's) server under cProfile and writes its stats to FILE.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import MongoClient, ReturnDocument, UpdateOne, monitoring
from pymongo.write_concern import WriteConcern

from adapters.indexes import ensure_all_indexes
from bench.procstat import user_system_seconds
from devstack.procs import free_port, port_open

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
# The server under cProfile, timed by the CPU of its event-loop thread (where commands run), so
# that waiting for clients and other processes' load don't show up as cost.
_PROFILED = """
import cProfile, runpy, sys, time
profile = cProfile.Profile(time.thread_time)
out, sys.argv = sys.argv[1], ["mongo_standin", *sys.argv[2:]]
profile.enable()
try:
    runpy.run_module("devstack.mongo_standin", run_name="__main__")
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(out)
"""


class _Counter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _setup(db: Any) -> None:
    """The indexes the worker's collections have (it creates them all at start)."""
    ensure_all_indexes(db)


def _event(db: Any, i: int) -> None:
    """The commands of one webhook: 10 commands."""
    at = datetime.now(UTC)
    customer, service, intent = ObjectId(), ObjectId(), f"pi_{i:08d}"
    record = db.payments.insert_one(
        {"paymentId": intent, "customerId": customer, "serviceId": service, "amount": 5000, "currency": "usd",
         "status": "pending", "createdAt": at, "updatedAt": at, "lastEventAt": None, "reviewRequired": None,
         "activatedAt": None, "customerEmail": f"c{i}@example.com", "statusHistory": []}
    ).inserted_id  # fmt: skip
    db.stripe_events.find_one_and_update(
        {"_id": f"evt_{i:08d}"},
        {"$setOnInsert": {"type": "payment_intent.succeeded", "payload": {"id": intent, "amount": 5000},
                          "status": "received", "receivedAt": at},
         "$set": {"lastAttemptAt": at}, "$inc": {"attempts": 1}},
        upsert=True, projection={"status": 1}, return_document=ReturnDocument.AFTER,
    )  # fmt: skip
    db.payments.find_one_and_update(
        {"paymentId": intent, "status": {"$in": ["pending", "processing"]},
         "$or": [{"lastEventAt": None}, {"lastEventAt": {"$lt": at}}]},
        {"$set": {"status": "completed", "updatedAt": at, "lastEventAt": at, "stripeEventId": f"evt_{i:08d}"},
         "$push": {"statusHistory": {"status": "completed", "at": at}}, "$min": {"paidAt": at}},
        return_document=ReturnDocument.AFTER,
    )  # fmt: skip
    db.enrollments.find_one_and_update(
        {"customerId": customer, "serviceId": service, "status": {"$nin": ["active", "suspended"]},
         "paymentId": {"$ne": record}},
        {"$set": {"status": "active", "paymentId": record, "paymentDate": at, "updatedAt": at},
         "$setOnInsert": {"createdAt": at}},
        projection={"_id": 1}, upsert=True, return_document=ReturnDocument.AFTER,
    )  # fmt: skip
    db.notifications.bulk_write(
        [UpdateOne({"dedupeKey": f"{intent}:{who}"},
                   {"$setOnInsert": {"template": "paid", "recipient": f"{who}@example.com", "context": {"n": str(i)},
                                     "status": "pending", "attempts": 0, "createdAt": at, "updatedAt": at}},
                   upsert=True) for who in ("customer", "specialist")],
        ordered=False,
    )  # fmt: skip
    db.payments.update_one({"_id": record, "activatedAt": None}, {"$set": {"activatedAt": at, "updatedAt": at}})
    db.payments.update_one({"_id": record}, {"$set": {"chargeId": f"ch_{i:08d}"}})
    db.payments.find_one({"_id": record})
    db.notifications.update_one({"dedupeKey": f"{intent}:customer"}, {"$set": {"status": "sent", "updatedAt": at}})
    db.stripe_events.update_one({"_id": f"evt_{i:08d}"}, {"$set": {"status": "processed"}, "$unset": {"error": ""}})


def run(root: Path, events: int, profile: Path | None) -> tuple[float, float, int]:
    """Serve from ``root``, send ``events`` webhooks' commands; (server user and system CPU seconds, commands)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        head = (
            [sys.executable, "-c", _PROFILED, str(profile)]
            if profile
            else [sys.executable, "-m", "devstack.mongo_standin"]
        )
        argv = [*head, "--port", str(port), "--snapshot", f"{tmp}/state.bson"]
        env = {**os.environ, "PYTHONPATH": str(root)}
        server = subprocess.Popen(argv, cwd=root, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not port_open(HOST, port):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the stand-in did not start")
                time.sleep(0.05)
            counter = _Counter()
            client: MongoClient[dict[str, Any]] = MongoClient(
                f"mongodb://{HOST}:{port}", tz_aware=True, event_listeners=[counter]
            )
            db = client.get_database("mix", write_concern=WriteConcern(w="majority", j=True))
            _setup(db)
            for i in range(20):  # warm up: imports, first-time paths
                _event(db, -1 - i)
            before, commands = user_system_seconds(server.pid), counter.commands
            for i in range(events):
                _event(db, i)
            after = user_system_seconds(server.pid)
            client.close()
            return after[0] - before[0], after[1] - before[1], counter.commands - commands
        finally:
            server.terminate()
            server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child.standin_mix")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1, help="runs per root, alternating")
    parser.add_argument("--root", type=Path, action="append", help="checkout to run the stand-in from")
    parser.add_argument("--profile", type=Path, help="cProfile the server; write the stats here")
    args = parser.parse_args()
    roots: list[Path] = args.root or [REPO]
    for round_ in range(args.rounds):
        for n, root in enumerate(roots):
            user, system, commands = run(root.resolve(), args.events, args.profile if round_ == n == 0 else None)
            print(
                f"{root}: {commands} commands, {user + system:.2f} s CPU (user {user:.2f}, system {system:.2f}),"
                f" {1000 * (user + system) / commands:.3f} ms/command"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
