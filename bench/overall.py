"""The overall benchmark (issue 11): every path next to its ceiling, measured in one run.

    make bench                                     # or: .venv/bin/python -m bench
    BENCH_SECONDS=3 BENCH_EVENTS=500 BENCH_SOAK_EVENTS=2000 make bench    # a quick run
    .venv/bin/python -m bench soak                 # the worker memory soak alone
    BENCH_CODE=/path/to/worktree .venv/bin/python -m bench   # measure another checkout

Runs, in this order, on one local stack (``rig.py``):
  1. closed loop (wrk): the bare ceiling app, the webhook route with an unsubscribed type, with
     ``payment_intent.succeeded`` (no worker), then again while a worker processes what it
     enqueues: one of each per round, ``BENCH_RUNS`` rounds;
  2. open loop at ``BENCH_RATE``/s, worker running: the bare app, then the webhook route, whose
     events are followed until their enrollments are active (end-to-end latency);
  3. queue drains of ``BENCH_EVENTS`` messages: the no-op actor (plain Dramatiq, then inside the
     project's worker), the succeeded path with its emails left queued, then with them sent;
  4. the ingress's memory while it streams a 50,000-payment CSV export, against idle (``export_memory``),
  5. the worker memory soak (``soak.py``): ``BENCH_SOAK_EVENTS`` events through one worker, its
     memory sampled every tenth of them (0: not run).
  6. the success metrics' API and page at 100,000 payments, against a small ops answer (``success_pages``).
Rounds interleave the variants, so a change in the machine's load hits all of them alike; each
figure is the median of its rounds. Prints a markdown table and writes it to
``var/bench/latest.md`` under the measured checkout.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dramatiq import Message

from adapters.queue import EMAILS_QUEUE, STRIPE_EVENTS_QUEUE, event_message
from bench import payloads
from bench.child.bench_noop import ACTOR as NOOP_ACTOR
from bench.child.bench_noop import QUEUE as NOOP_QUEUE
from bench.drain import DrainResult, QueueWatch, WorkerKind, child_path, drain, plain_noop, project_worker
from bench.export_memory import ExportMemory, measure_export
from bench.open_loop import OpenLoopResult, open_loop
from bench.procstat import cpu_seconds
from bench.rig import Rig, Sizes
from bench.soak import SoakResult, soak
from bench.success_pages import SuccessPages, measure_success_pages
from bench.wrk import WrkResult, run_wrk, write_requests
from usecases.handlers import SUBSCRIBED


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Config:
    seconds: float  # of each wrk run and each open-loop run
    events: int  # messages per drain; distinct bodies per wrk run
    rate: float  # of the open loop
    runs: int  # rounds; figures are their medians
    soak_events: int  # through one worker, for the memory soak (0: no soak)
    connections: int
    wrk_threads: int
    sizes: Sizes

    @staticmethod
    def from_env() -> Config:
        threads = int(_env_number("WORKER_THREADS", 8))
        return Config(
            seconds=_env_number("BENCH_SECONDS", 10),
            events=int(_env_number("BENCH_EVENTS", 3000)),
            rate=_env_number("BENCH_RATE", 200),
            runs=int(_env_number("BENCH_RUNS", 3)),
            soak_events=int(_env_number("BENCH_SOAK_EVENTS", 50_000)),
            connections=int(_env_number("BENCH_CONNECTIONS", 64)),
            wrk_threads=int(_env_number("BENCH_WRK_THREADS", 2)),
            # The worker's size, passed to the stack as the project's settings (the 2 x 8).
            sizes=Sizes(processes=int(_env_number("WORKER_PROCESSES", 2)), threads=threads),
        )


@dataclass
class HttpRuns:
    """Closed-loop runs of one target, with the server's CPU milliseconds per request."""

    runs: list[WrkResult] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


@dataclass
class OpenLoopRuns:
    bare: list[OpenLoopResult] = field(default_factory=list)
    webhook: list[OpenLoopResult] = field(default_factory=list)
    #: Seconds from each POST to its enrollment's activation, every run pooled.
    end_to_end: list[float] = field(default_factory=list)
    sent: int = 0


@dataclass
class Results:
    http: dict[str, HttpRuns] = field(default_factory=dict)
    open_loop: OpenLoopRuns = field(default_factory=OpenLoopRuns)
    drains: dict[str, list[DrainResult]] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    soak: SoakResult | None = None
    export: ExportMemory | None = None
    success_pages: SuccessPages | None = None
    #: What did not go as measured (a drain that never finished, events never activated).
    problems: list[str] = field(default_factory=list)


#: Row keys of the closed-loop targets.
BARE, IGNORED, ENQUEUED, WORKER_RUNNING = "bare", "unsubscribed", "enqueued", "worker running"
#: Row keys of the drains.
NOOP_PLAIN, NOOP_PROJECT, EMAILS_OFF, EMAILS_ON = "noop plain", "noop project", "emails off", "emails on"


class Benchmark:
    def __init__(self, rig: Rig, config: Config) -> None:
        self.rig, self.config = rig, config
        self.results = Results()
        self.requests_dir = rig.var / "requests"
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    # -- helpers ---------------------------------------------------------------------------------

    def progress(self, what: str) -> None:
        """A line on stderr, so a run of several minutes shows where it is (stdout is the report)."""
        print(f"[{time.monotonic() - self.started:4.0f} s] {what}", file=sys.stderr, flush=True)

    def problem(self, what: str) -> None:
        self.results.problems.append(what)
        self.progress(f"PROBLEM: {what}")

    def bodies(self, payments: list[dict[str, Any]], event_type: str = payloads.SUCCEEDED) -> list[bytes]:
        events = [payloads.succeeded(p, payloads.BODY_BYTES, event_type) for p in payments]
        return payloads.encoded(events)

    def signed(self, bodies: list[bytes]) -> list[tuple[bytes, str]]:
        return payloads.signed(bodies, self.rig.stack.webhook_secret)

    def wrk(self, name: str, url: str, bodies: list[bytes], pid: int, seconds: float | None = None) -> WrkResult:
        """One wrk run, signed right before it (the ingress refuses signatures 300 s old)."""
        requests = write_requests(self.requests_dir / f"{name.replace(' ', '_')}.txt", self.signed(bodies))
        before = cpu_seconds(pid)
        config = self.config
        result = run_wrk(url, requests, seconds or config.seconds, config.wrk_threads, config.connections)
        if seconds is None:  # a measured run, not a warm-up
            runs = self.results.http.setdefault(name, HttpRuns())
            runs.runs.append(result)
            runs.cpu_ms.append((cpu_seconds(pid) - before) * 1000 / max(1, result.requests))
        return result

    def worker(self) -> WorkerKind:
        """``python -m workers`` as the stack runs it: every queue."""
        return project_worker("worker", STRIPE_EVENTS_QUEUE, (STRIPE_EVENTS_QUEUE, EMAILS_QUEUE))

    def wait_work_done(self, timeout: float) -> None:
        """Until every queued event, then every queued email, is processed (or ``timeout``).

        The latency measured ends at the enrollment, but the next round must not start behind the
        emails' tail. Dropping them instead would leave their notifications pending: the worker's
        sweep would find them a minute later and queue them again, during a round.
        """
        for queue in (STRIPE_EVENTS_QUEUE, EMAILS_QUEUE):
            QueueWatch(self.rig.counters, queue, ()).wait_until(lambda s: s.unacked == 0, timeout)

    # -- 1: closed loop --------------------------------------------------------------------------------

    def closed_loop(self, bare_url: str) -> None:
        rig, ingress = self.rig, self.rig.stack.urls["ingress"]
        made = payloads.payments(self.config.events)  # not stored: no worker reads these
        succeeded, ignored = self.bodies(made), self.bodies(made, payloads.unhandled_type(SUBSCRIBED))
        targets = [
            (BARE, bare_url, succeeded, rig.pid("bare")),
            (IGNORED, ingress, ignored, rig.pid("ingress")),
            (ENQUEUED, ingress, succeeded, rig.pid("ingress")),
        ]
        for name, url, bodies, pid in targets:
            self.wrk(name, url, bodies, pid, seconds=1)  # warm-up: connections, thread pools
        rig.flush_queues()
        for round_number in range(1, self.config.runs + 1):
            for name, url, bodies, pid in targets:
                self.progress(f"closed loop, round {round_number}: {name}")
                self.wrk(name, url, bodies, pid)
                rig.flush_queues()  # no backlog carried into the next run
            self.closed_loop_with_worker()

    def closed_loop_with_worker(self) -> None:
        """The webhook route while a worker (all queues) processes real events on the same cores."""
        rig = self.rig
        made = payloads.seed(rig.db, self.config.events)  # fresh payments: the worker does real work
        rig.start_ready_worker(self.worker())
        self.progress(f"closed loop: {WORKER_RUNNING}")
        self.wrk(WORKER_RUNNING, rig.stack.urls["ingress"], self.bodies(made), rig.pid("ingress"))
        rig.stop_worker()
        rig.flush_queues()

    # -- 2: open loop and end to end ----------------------------------------------------------------

    def open_loop(self, bare_url: str) -> None:
        rig, config, runs = self.rig, self.config, self.results.open_loop
        host, count = "127.0.0.1", int(config.rate * config.seconds)
        bare_port, ingress_port = int(bare_url.rsplit(":", 1)[1]), rig.stack.ingress_port
        rig.clear_data()
        rig.start_ready_worker(self.worker())
        for round_number in range(1, config.runs + 1):
            self.progress(f"open loop at {config.rate:g}/s, round {round_number}: bare, then webhook to enrollment")
            filler = self.signed(self.bodies(payloads.payments(count)))
            runs.bare.append(open_loop(host, bare_port, filler, config.rate))
            made = payloads.seed(rig.db, count)
            sent = open_loop(host, ingress_port, self.signed(self.bodies(made)), config.rate)
            runs.webhook.append(sent)
            self.wait_work_done(timeout=180)
            delays = self.activation_delays(made, sent.sent_at)
            if len(delays) < count:
                self.problem(f"open loop, round {round_number}: {count - len(delays)} of {count} events not activated")
            runs.end_to_end += delays
            runs.sent += count
        rig.stop_worker()
        rig.flush_queues()

    def activation_delays(self, made: list[dict[str, Any]], sent_at: list[float]) -> list[float]:
        """Seconds from each POST to its enrollment's ``updatedAt`` (set when activated)."""
        sent = {p["customerId"]: at for p, at in zip(made, sent_at, strict=True)}
        found = self.rig.db.enrollments.find(
            {"customerId": {"$in": list(sent)}, "status": "active"}, {"customerId": 1, "updatedAt": 1}
        )
        return [e["updatedAt"].timestamp() - sent[e["customerId"]] for e in found]

    # -- 3: drains ------------------------------------------------------------------------------------

    def drain_kinds(self) -> dict[str, WorkerKind]:
        child = child_path()
        events, both = (STRIPE_EVENTS_QUEUE,), (STRIPE_EVENTS_QUEUE, EMAILS_QUEUE)
        noop_env = {**child, "BENCH_NOOP": "project"}
        return {
            NOOP_PLAIN: plain_noop(NOOP_QUEUE),
            NOOP_PROJECT: project_worker(
                "no-op, project worker", NOOP_QUEUE, (NOOP_QUEUE,), "bench_noop", "--queues", NOOP_QUEUE, env=noop_env
            ),
            # Emails off: the worker consumes only the events' queue; the emails the handler queues stay.
            EMAILS_OFF: project_worker("emails off", STRIPE_EVENTS_QUEUE, events, "--queues", STRIPE_EVENTS_QUEUE),
            EMAILS_ON: project_worker("emails on", STRIPE_EVENTS_QUEUE, both),
        }

    def drains(self) -> None:
        rig, total = self.rig, self.config.events
        timeout = max(180.0, total / 10)
        kinds = self.drain_kinds()
        for round_number in range(self.config.runs):
            last_round = round_number == self.config.runs - 1
            for name, kind in kinds.items():
                self.progress(f"drain of {total} messages, round {round_number + 1}: {kind.label}")
                rig.flush_queues()
                rig.clear_data()  # every drain starts from the same (empty) database
                if kind.queue == NOOP_QUEUE:
                    events = [payloads.succeeded(p, payloads.BODY_BYTES) for p in payloads.payments(total)]
                    rig.enqueue([noop_message(e) for e in events])
                else:
                    made = payloads.seed(rig.db, total)
                    rig.enqueue([event_message(payloads.succeeded(p, payloads.BODY_BYTES)) for p in made])
                processes = self.config.sizes.processes
                result = drain(kind, processes, rig.counters, rig.start_worker, rig.servers(), timeout)
                result.verified = self.verify(name, total)
                if not result.done:
                    self.problem(f"drain {kind.label}, round {round_number + 1}: not finished (timeout or stuck)")
                self.results.drains.setdefault(name, []).append(result)
                if last_round and name == EMAILS_ON:  # every process, after all the runs
                    servers = rig.rss()
                    self.results.rss = {"ingress": servers.pop("ingress"), **result.rss, **servers}
                rig.stop_worker()

    def verify(self, name: str, total: int) -> str:
        """What the drained work left in MongoDB (read after the counts, so not counted)."""
        if name in (NOOP_PLAIN, NOOP_PROJECT):
            return ""
        db = self.rig.db
        active = db.enrollments.count_documents({"status": "active"})
        text = f"{active}/{total} enrollments active"
        if name == EMAILS_ON:
            sent = db.notifications.count_documents({"status": "sent"})
            text += f", {sent}/{2 * total} emails sent"
        return text

    # -- 4: memory soak --------------------------------------------------------------------------------

    def soak(self) -> None:
        result = soak(self.rig, self.worker(), self.config.soak_events, self.progress)
        if result.problem is not None:
            self.problem(result.problem)
        self.results.soak = result

    def run(self, only_soak: bool = False) -> Results:
        if not only_soak:
            bare_url = self.rig.start_bare()
            self.closed_loop(bare_url)
            self.open_loop(bare_url)
            self.drains()
            self.progress("export of 50,000 payments: ingress memory")
            self.results.export = measure_export(self.rig)
        if self.config.soak_events > 0:
            self.soak()
        if not only_soak:  # last: it leaves its 100,000 payments in place
            self.progress("success metrics at 100,000 payments: page loads")
            self.results.success_pages = measure_success_pages(self.rig)
        return self.results


def noop_message(event: dict[str, Any]) -> Message[Any]:
    """A message for the no-op actor carrying the same 3 KB event the real actor gets."""
    return Message(queue_name=NOOP_QUEUE, actor_name=NOOP_ACTOR, args=(event,), kwargs={}, options={})


def measure(config: Config, only_soak: bool = False) -> Results:
    """Run everything (or the soak alone) on a fresh stack under a temporary folder, removed after
    a run that succeeded unless ``BENCH_KEEP`` is set (the logs of every process are in it)."""
    var = Path(tempfile.mkdtemp(prefix="bench-"))
    rig = Rig(var, config.sizes)
    failed = True
    try:
        print(f"starting the stack in {var}", file=sys.stderr, flush=True)
        rig.start()
        results = Benchmark(rig, config).run(only_soak)
        failed = bool(results.problems)  # keep the logs to look at
        return results
    finally:
        rig.stop()
        if failed or os.environ.get("BENCH_KEEP"):
            print(f"logs kept in {var / 'logs'} and {var / 'stack' / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(var, ignore_errors=True)
