"""Worker throughput: fill a queue while no worker runs, start one, time how fast it empties.

The clock starts when every worker process has called Redis (its heartbeat: booted, fetching),
over the messages not yet acknowledged then, and stops when every message of the watched queues
is acknowledged (their ``.msgs`` hashes, delay queues included, are empty), so boot time is not
counted. The command counts and the CPU of every process are read at those two moments.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bench.counters import CommandCounters, PerEvent
from bench.procstat import cpu_seconds, group_pids, machine_jiffies, rss_mb
from bench.target import CHILD_DIR
from devstack.procs import Child, python_module
from devstack.stack import HEARTBEATS

#: Dramatiq's Redis key prefix.
NAMESPACE = "dramatiq"
#: Seconds between two polls of the queues: the figures' resolution (1% of a 2 s drain), at a few
#: percent of one core for the harness.
POLL = 0.02
#: Seconds without any change in the queues after which a wait gives up (a stuck worker).
STALL = 60.0


@dataclass(frozen=True)
class WorkerKind:
    """One way of running workers over a filled queue."""

    label: str
    argv: list[str]
    env: dict[str, str]
    #: The queue filled before the worker starts.
    queue: str
    #: Queues that must be empty for the work to be done (e.g. the emails the events queued).
    watched: tuple[str, ...]


def plain_noop(queue: str) -> WorkerKind:
    """The no-op actor on plain Dramatiq, under ``python -m workers``'s CLI (``child/plain_workers.py``)."""
    argv = [sys.executable, str(CHILD_DIR / "plain_workers.py"), "--queues", queue]
    return WorkerKind("no-op, plain Dramatiq", argv, {}, queue, (queue,))


def project_worker(
    label: str, queue: str, watched: tuple[str, ...], *args: str, env: Mapping[str, str] | None = None
) -> WorkerKind:
    """``python -m workers`` with extra CLI arguments (modules to import, ``--queues``)."""
    return WorkerKind(label, python_module("workers", *args), dict(env or {}), queue, watched)


def child_path() -> dict[str, str]:
    """``PYTHONPATH`` that also finds the child modules (after the measured code)."""
    return {"PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(CHILD_DIR)]).lstrip(os.pathsep)}


@dataclass
class DrainResult:
    kind: str
    #: Messages of the filled queue not yet acknowledged once every worker process was up.
    measured: int = 0
    seconds: float = float("nan")
    done: bool = False
    #: CPU share of one core per process over the drain.
    cpu: dict[str, float] = field(default_factory=dict)
    counts: PerEvent | None = None
    rss: dict[str, float] = field(default_factory=dict)
    #: Share of all the machine's cores busy over the drain (ours and anyone else's).
    machine_busy: float = float("nan")
    #: What was checked once drained (e.g. enrollments active, emails sent).
    verified: str = ""

    @property
    def rate(self) -> float:
        return self.measured / self.seconds if self.done and self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class QueueState:
    waiting: int  # in the filled queue's list, not yet fetched
    unacked: int  # in the filled queue (and its delay queue), fetched or not, not yet acknowledged
    unfinished: int  # the same over every watched queue
    ready: int  # worker processes that have called Redis since the watch began (their heartbeats)


class QueueWatch:
    """Polls Dramatiq's Redis keys of a few queues in one round trip, counting its own commands."""

    def __init__(self, counters: CommandCounters, queue: str, watched: tuple[str, ...]) -> None:
        self.counters, self.queue = counters, queue
        self.hashes = [f"{NAMESPACE}:{q}{suffix}.msgs" for q in (queue, *watched) for suffix in ("", ".DQ")]
        self.since = time.time() * 1000  # heartbeats are the broker's clock in ms: this machine's

    def poll(self) -> QueueState:
        pipe = self.counters.redis.pipeline(transaction=False)
        pipe.llen(f"{NAMESPACE}:{self.queue}")
        for key in self.hashes:
            pipe.hlen(key)
        pipe.zcount(HEARTBEATS, self.since, "+inf")
        waiting, *sizes, ready = pipe.execute()
        for command, calls in (("llen", 1), ("hlen", len(self.hashes)), ("zcount", 1)):
            self.counters.own[command] += calls
        return QueueState(int(waiting), sum(sizes[:2]), sum(sizes[2:]), int(ready))

    def wait_until(
        self, until: Callable[[QueueState], bool], timeout: float, alive: Callable[[], bool] = lambda: True
    ) -> QueueState | None:
        """Poll until ``until(state)``; None after ``timeout``, ``STALL`` s without change, or once not ``alive()``."""
        moved = time.monotonic()
        deadline, last = moved + timeout, None
        while not until(state := self.poll()):
            now = time.monotonic()
            if state != last:
                last, moved = state, now
            if now > deadline or now - moved > STALL or not alive():
                return None
            time.sleep(POLL)
        return state


def drain(
    kind: WorkerKind,
    processes: int,
    counters: CommandCounters,
    start_worker: Callable[[WorkerKind], Child],
    others: Mapping[str, int],
    timeout: float,
) -> DrainResult:
    """Start ``kind`` over its filled queue and measure until the watched queues are empty.

    The clock starts once all ``processes`` worker processes have called Redis (a process still
    importing would otherwise count as slowness), over the messages still unacknowledged then.
    ``others`` names the processes besides the worker's whose CPU is reported (MongoDB, Redis...).
    The worker is left running (the caller stops it); its processes' RSS is read at the end.
    """
    result = DrainResult(kind.label)
    watch = QueueWatch(counters, kind.queue, kind.watched)  # before the start: its heartbeats are after
    child = start_worker(kind)
    started = watch.wait_until(lambda s: s.ready >= processes, timeout, child.alive)
    if started is None:
        return result
    t0, at_start = time.monotonic(), counters.read()
    watched = {**worker_processes(child), **others}
    cpu0, machine0 = {name: cpu_seconds(pid) for name, pid in watched.items()}, machine_jiffies()
    if watch.wait_until(lambda s: s.unfinished == 0, timeout, child.alive) is None:
        return result
    t1, at_end = time.monotonic(), counters.read()
    result.measured, result.seconds, result.done = started.unacked, t1 - t0, True
    result.cpu = {name: (cpu_seconds(pid) - cpu0[name]) / result.seconds for name, pid in watched.items()}
    (busy0, all0), (busy1, all1) = machine0, machine_jiffies()
    result.machine_busy = (busy1 - busy0) / max(1, all1 - all0)
    result.counts = CommandCounters.per_event(at_start, at_end, started.unacked)
    result.rss = {name: rss_mb(pid) for name, pid in worker_processes(child).items()}
    return result


def worker_processes(child: Child) -> dict[str, int]:
    """The worker's processes by name: its CLI (the supervisor) and each worker process it forked."""
    forked = [pid for pid in group_pids(child.pid) if pid != child.pid]
    return {"worker CLI": child.pid, **{f"worker process {i}": pid for i, pid in enumerate(forked, 1)}}
