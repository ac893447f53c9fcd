"""The system under test: the local stack (``devstack.stack.Stack``) on free ports, with the
MongoDB stand-in replaced by the counting one, plus the bare ceiling app, in one place.

The stack's own MongoDB is not started: ``MONGODB_URI`` names ours, which the ``Stack`` then uses
as a real MongoDB. Ours runs with the arguments the stack gives its stand-in (snapshot, journal).
The ingress, Redis, the local Stripe and the SMTP sink are the stack's; workers are started and
stopped per measurement with the stack's environment (``Stack.app_env``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from dramatiq import Message
from pymongo import MongoClient

from adapters.queue import build_broker, send
from adapters.settings import load_settings
from bench.counters import CommandCounters
from bench.drain import WorkerKind
from bench.procstat import rss_mb
from bench.target import CHILD_DIR
from devstack.procs import Child, free_port
from devstack.stack import HEARTBEATS, HOST, Stack

T = TypeVar("T")

DATABASE = "bench"


@dataclass(frozen=True)
class Sizes:
    processes: int
    threads: int


class Rig:
    def __init__(self, var: Path, sizes: Sizes) -> None:
        self.var, self.sizes = var, sizes
        self.logs = var / "logs"
        self.mongo_port = free_port()
        self.mongo_url = f"mongodb://{HOST}:{self.mongo_port}/?directConnection=true"
        overrides = {"WORKER_PROCESSES": str(sizes.processes), "WORKER_THREADS": str(sizes.threads)}
        environ = {"APP_ENV": "development", "MONGODB_URI": self.mongo_url, "MONGODB_DB": DATABASE}
        self.stack = Stack(var / "stack", environ, ingress_port=free_port(), overrides=overrides)
        self.children: dict[str, Child] = {}

    # -- start and stop ------------------------------------------------------------------------

    def start(self) -> None:
        (self.var / "mongo").mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(CHILD_DIR / "counting_mongo.py"), "--host", HOST, "--port",
                str(self.mongo_port), "--snapshot", str(self.var / "mongo" / "snapshot.bson")]  # fmt: skip
        self._start_child("mongo", argv).wait_tcp(HOST, self.mongo_port)
        self.stack.start()  # every part, the ingress and a worker: as `make run` has them
        self.stack.stop_part("worker")  # workers run only where a measurement wants one
        env = self.stack.app_env()
        self.settings = load_settings(env, dotenv=None)
        self.client: MongoClient[dict[str, Any]] = MongoClient(self.mongo_url, tz_aware=True)
        self.db = self.client[DATABASE]
        self.redis = redis.Redis.from_url(self.stack.urls["redis"])
        self.broker = build_broker(self.settings)  # signs what it enqueues, as the ingress's does
        self.counters = CommandCounters(self.client, self.redis)

    def start_bare(self) -> str:
        """The ceiling app on a free port with the ingress's environment; returns its base URL."""
        port = free_port()
        env = {**self.stack.app_env(), "PORT": str(port)}
        self._start_child("bare", [sys.executable, str(CHILD_DIR / "bare_ingress.py")], env).wait_tcp(HOST, port)
        url = f"http://{HOST}:{port}"
        request = urllib.request.Request(url + "/api/webhooks/stripe", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            if json.loads(answer.read()).get("bare") is not True:
                raise RuntimeError("the ceiling app answers like the ingress: ingress.__main__ ignores create_app")
        return url

    def start_patient_ingress(self, extra: Mapping[str, str] | None = None) -> tuple[str, int]:
        """The ingress with a patient MongoDB client (``child/patient_ingress.py``) on a free port: URL, pid.

        ``extra``: more environment (an ``OPS_TOKEN``, say)."""
        port = free_port()
        env = {**self.stack.app_env(), "PORT": str(port), "LOG_LEVEL": "WARNING", **(extra or {})}
        child = self._start_child("patient ingress", [sys.executable, str(CHILD_DIR / "patient_ingress.py")], env)
        child.wait_tcp(HOST, port)
        return f"http://{HOST}:{port}", child.pid

    def stop_child(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            child.stop()

    def start_worker(self, kind: WorkerKind) -> Child:
        return self._start_child("worker", kind.argv, {**self.stack.app_env(), **kind.env})

    def start_ready_worker(self, kind: WorkerKind) -> Child:
        """Start a worker and wait until one of its processes has fetched from Redis (its heartbeat)."""
        since = time.time() * 1000
        child = self.start_worker(kind)
        child.wait_until(lambda: bool(self.redis.zrangebyscore(HEARTBEATS, since, "+inf")), 60, "worker boot")
        return child

    def stop_worker(self) -> None:
        child = self.children.pop("worker", None)
        if child is not None:
            child.stop()

    def _start_child(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
        child = Child(name, argv, self.logs, env=dict(env or {}), cwd=self.stack.var)
        self.children[name] = child
        return child.start()

    def stop(self) -> None:
        for name in ("worker", "bare", "patient ingress"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop()
        for closing in ("broker", "client", "redis"):
            if hasattr(self, closing):
                getattr(self, closing).close()
        self.stack.stop()
        mongo = self.children.pop("mongo", None)
        if mongo is not None:
            mongo.stop()

    # -- state between measurements ----------------------------------------------------------------

    def flush_queues(self, queue: str | None = None) -> None:
        """Drop every Dramatiq key (queues, acks, heartbeats: only while no worker runs), or one
        queue's messages (its list and hash, delay queue included: safe under a running worker,
        whose ack of a dropped message does nothing)."""
        pattern = f"dramatiq:{queue}*" if queue else "dramatiq:*"
        keys = list(self.redis.scan_iter(pattern))
        for start in range(0, len(keys), 500):
            self.redis.delete(*keys[start : start + 500])

    def clear_data(self) -> None:
        """Empty every collection (indexes stay) and the mail folder, so each drain starts alike."""
        for name in self.db.list_collection_names():
            self.db[name].delete_many({})
        shutil.rmtree(self.stack.mail_dir, ignore_errors=True)
        self.stack.mail_dir.mkdir(parents=True, exist_ok=True)

    def enqueue(self, messages: list[Message[Any]]) -> None:
        for message in messages:
            send(self.broker, message)

    # -- processes -------------------------------------------------------------------------------

    def pid(self, name: str) -> int:
        child = self.children.get(name) or self.stack.children[name]
        return child.pid

    def servers(self) -> dict[str, int]:
        """The long-lived processes whose CPU the worker figures report, besides the worker's own."""
        names = {"mongo stand-in": "mongo", "redis": "redis", "smtp sink": "smtp", "ingress": "ingress"}
        return {**{label: self.pid(name) for label, name in names.items()}, "harness": os.getpid()}

    def rss(self) -> dict[str, float]:
        return {label: rss_mb(pid) for label, pid in self.servers().items() if label != "harness"}


def alone(prefix: str, measure: Callable[[Rig], T]) -> T:
    """One section of ``make bench`` by itself: ``measure`` on a fresh stack (one worker process of
    one thread) in a temporary folder, stopped however it ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as var:
        rig = Rig(Path(var), Sizes(processes=1, threads=1))
        try:
            print("starting the stack", file=sys.stderr, flush=True)
            rig.start()
            return measure(rig)
        finally:
            rig.stop()
