"""The worker memory soak: ``BENCH_SOAK_EVENTS`` events through one worker, its memory sampled as it goes.

One ``python -m workers`` (every queue, the stack's processes and threads, as ``make run`` has it)
takes the events in ten equal batches: each batch's payments are stored and its
``payment_intent.succeeded`` events queued, then the worker drains them, emails included; once the
queues are empty the resident memory (``VmRSS``) of every worker process and of the MongoDB
stand-in is read, with the documents the batch left. The same worker runs from the first batch to
the last, so what it keeps per message, per connection or per cache entry adds up as it would over
weeks.

Each batch then empties the database, as each drain does: every read of the worker is bounded
(``limit``) whatever the data, and a stand-in that kept a whole run's documents grows with them
and, on a shared machine, slows until the worker's sweeps time out on it. With the data bounded,
the stand-in's own figures show whether it keeps anything else.

The worker is held to a memory budget per process (``LIMIT_MIB``). Its verdict: the peak of each
worker process is under the budget, and the growth over the last half of the run is no more than
allocator noise (``PLATEAU_MIB``): a plateau.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.queue import EMAILS_QUEUE, STRIPE_EVENTS_QUEUE, event_message
from bench import payloads
from bench.drain import QueueWatch, WorkerKind, worker_processes
from bench.procstat import rss_mb
from bench.rig import Rig

#: The memory budget of one worker process, in MiB.
LIMIT_MIB = 200.0
#: Growth over the last half of the run, in MiB, still taken as a plateau: the allocator's own
#: drift (arenas, fragmentation) moves a process by a few MiB; a per-event leak adds far more.
PLATEAU_MIB = 5.0
#: How many batches the run is cut into (a sample after each, plus one at idle).
BATCHES = 10
#: The stand-in's label in the samples.
STANDIN = "mongo stand-in"


@dataclass(frozen=True)
class Sample:
    events: int
    seconds: float  # since the worker was ready
    rss: dict[str, float]  # MiB, by process
    documents: int  # stored in MongoDB, every collection, before the batch's are deleted


@dataclass
class SoakResult:
    events: int
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0
    #: Why the run stopped early, if it did.
    problem: str | None = None

    def workers(self) -> list[str]:
        """The worker processes sampled (the CLI, which runs no actor, is left out of the verdict)."""
        return [name for name in self.samples[0].rss if name.startswith("worker process")] if self.samples else []


def soak(rig: Rig, kind: WorkerKind, events: int, progress: Callable[[str], None]) -> SoakResult:
    """Run ``events`` events through one worker of ``kind`` in ``BATCHES`` batches, sampling after each."""
    result = SoakResult(events)
    rig.flush_queues()
    rig.clear_data()
    child = rig.start_ready_worker(kind)
    try:
        time.sleep(2)  # the boot rounds (dead workers, sweeps) done: the idle figure
        processes = worker_processes(child)
        started = time.monotonic()

        def sample(done: int) -> None:
            rss = {name: rss_mb(pid) for name, pid in processes.items()}
            rss[STANDIN] = rss_mb(rig.pid("mongo"))
            stored = sum(rig.db[name].estimated_document_count() for name in rig.db.list_collection_names())
            result.samples.append(Sample(done, time.monotonic() - started, rss, stored))

        sample(0)
        step, done = math.ceil(events / BATCHES), 0
        while done < events:
            count = min(step, events - done)
            progress(f"soak: events {done + 1:,} to {done + count:,} of {events:,}")
            made = payloads.seed(rig.db, count)
            rig.enqueue([event_message(payloads.succeeded(p, payloads.BODY_BYTES)) for p in made])
            for queue in (STRIPE_EVENTS_QUEUE, EMAILS_QUEUE):
                watch = QueueWatch(rig.counters, queue, ())
                if watch.wait_until(lambda s: s.unacked == 0, max(600.0, count / 5), child.alive) is None:
                    result.problem = f"soak: the {queue} queue was not drained after {done + count:,} events"
                    return result
            done += count
            if worker_processes(child) != processes:
                result.problem = "soak: a worker process was replaced during the run (it died)"
                return result
            sample(done)
            rig.clear_data()  # the sink's mail files too (two per event would fill a disk)
        result.seconds = time.monotonic() - started
        return result
    finally:
        rig.stop_worker()
        rig.flush_queues()


def verdict(result: SoakResult) -> str:
    """Plateau and under the budget, or which process is not, from the samples."""
    if result.problem is not None or len(result.samples) < 3:
        return f"Verdict: no verdict ({result.problem or 'too few samples'})."
    last = result.samples[-1]
    half = next(s for s in result.samples if s.events >= last.events / 2)
    findings, good = [], True
    for name in result.workers():
        peak = max(s.rss[name] for s in result.samples)
        growth = last.rss[name] - half.rss[name]
        good = good and peak < LIMIT_MIB and growth <= PLATEAU_MIB
        findings.append(f"{name} {growth:+.1f} MiB over the last half, peak {peak:.0f} MiB")
    status = (
        f"plateau, under {LIMIT_MIB:.0f} MiB per process"
        if good
        else f"NOT a plateau under {LIMIT_MIB:.0f} MiB (at most {PLATEAU_MIB:g} MiB of growth over the last half)"
    )
    return f"Verdict: {status}: " + "; ".join(findings) + f" ({half.events:,} to {last.events:,} events)."


def section(result: SoakResult) -> list[str]:
    """The soak's markdown: its samples as a table, what the stand-in's growth is, and the verdict."""
    lines = ["", f"## Worker memory soak: {result.events:,} events through one worker", ""]
    if not result.samples:
        return [*lines, f"Not run: {result.problem}."]
    names = list(result.samples[0].rss)
    lines += [
        "| events | s | " + " | ".join(f"{name} (MiB)" for name in names) + " | documents stored |",
        "|---" * (len(names) + 3) + "|",
    ]
    for s in result.samples:
        label = f"{s.events:,}" if s.events else "0 (idle)"
        rss = " | ".join(f"{s.rss[name]:.1f}" for name in names)
        lines.append(f"| {label} | {s.seconds:.0f} | {rss} | {s.documents:,} |")
    last = result.samples[-1]
    if len(result.samples) >= 3:
        half = next(s for s in result.samples if s.events >= last.events / 2)
        lines += [
            "",
            f"The stand-in holds one batch's documents at each sample (payments, enrollments, the inbox with each "
            f"event's payload, the emails' outbox), deleted before the next batch: its RSS moved "
            f"{last.rss[STANDIN] - half.rss[STANDIN]:+.1f} MiB over the last half.",
        ]
    if result.seconds:
        lines.append(f"Took {result.seconds:.0f} s ({last.events / result.seconds:.0f} events/s, emails included).")
    return [*lines, "", verdict(result)]
