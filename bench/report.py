"""The benchmark's markdown: the issue's table, then what the table's figures rest on."""

from __future__ import annotations

import math
import os
from collections import Counter

from bench.drain import DrainResult
from bench.overall import (
    BARE,
    EMAILS_OFF,
    EMAILS_ON,
    ENQUEUED,
    IGNORED,
    NOOP_PLAIN,
    NOOP_PROJECT,
    WORKER_RUNNING,
    Config,
    HttpRuns,
    Results,
)
from bench.stats import median, median_run, pct

#: A single-threaded process (Python under its GIL, Redis) this busy bounds what it serves.
SATURATED = 0.9
#: Processes that can use at most about one core each.
ONE_CORE = ("mongo stand-in", "redis", "worker process")


def _rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if math.isfinite(value) else "did not finish"


def _ms(value: float) -> str:
    """Milliseconds, or seconds from 10 s on (an end-to-end latency behind a backlog)."""
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


class Http:
    """Medians of one closed-loop target's runs."""

    def __init__(self, runs: HttpRuns) -> None:
        self.rate = median([r.rate for r in runs.runs])
        self.p50 = median([r.p50_ms for r in runs.runs])
        self.p99 = median([r.p99_ms for r in runs.runs])
        self.cpu = median(runs.cpu_ms)
        self.errors = sum(r.errors for r in runs.runs)
        self.wrk_cpu = median([r.wrk_cpu / r.seconds for r in runs.runs])


def bound(result: DrainResult) -> str:
    """Which process bounds a drain, from the CPU each used."""
    if not result.done:
        return "did not finish: see the problems below"
    saturated = [name for name, share in result.cpu.items() if name.startswith(ONE_CORE) and share >= SATURATED]
    if saturated:
        return f"bounded by {', '.join(saturated)} (at least {SATURATED:.0%} of one core each)"
    if result.machine_busy >= SATURATED:
        cores = os.cpu_count() or 1
        ours = sum(result.cpu.values()) / (result.machine_busy * cores)
        return f"bounded by the cores: the machine was {result.machine_busy:.0%} busy, {ours:.0%} of that ours"
    busiest = max(result.cpu, key=lambda name: result.cpu[name])
    return (
        f"no process saturated (busiest: {busiest}, {result.cpu[busiest]:.0%}) and cores to spare: "
        "bounded by waiting (round trips, journal commits)"
    )


def cpu_line(name: str, result: DrainResult) -> str:
    if not result.done:
        return f"- {name}: {bound(result)}."
    shares = ", ".join(f"{proc} {share:.0%}" for proc, share in sorted(result.cpu.items(), key=lambda kv: -kv[1]))
    return (
        f"- {name}: {shares} of one core; machine {result.machine_busy:.0%} busy over {os.cpu_count()} cores. "
        f"{bound(result)}."
    )


def cpu_per_event(name: str, result: DrainResult) -> str:
    """Each process's CPU per message, and the rate the machine's cores would allow at that cost.

    The sum is what one event costs this machine; its cores divided by it is the most the drain
    could reach with every process busy all the time (what ``bound`` names, in milliseconds).
    """
    if not result.done or not result.rate > 0:
        return f"- {name}: did not finish."
    per = {proc: share / result.rate * 1000 for proc, share in result.cpu.items()}
    worker = sum(ms for proc, ms in per.items() if proc.startswith("worker"))
    others = ", ".join(f"{proc} {ms:.2f}" for proc, ms in sorted(per.items(), key=lambda kv: -kv[1])
                       if not proc.startswith("worker") and ms >= 0.005)  # fmt: skip
    total, cores = sum(per.values()), os.cpu_count() or 1
    return (
        f"- {name}: worker processes {worker:.2f} ms, {others} ms; all {total:.2f} ms: "
        f"{cores} cores allow at most {cores * 1000 / total:,.0f}/s at this cost "
        f"({cores * 1000 / worker:,.0f}/s if the worker had them to itself)."
    )


def drain_figure(runs: list[DrainResult], unit: str, mongo: bool) -> tuple[float, str]:
    """The median run's rate, and its table text."""
    result = median_run(runs, key=lambda r: r.rate if math.isfinite(r.rate) else -1.0)
    text = _rate(result.rate, unit)
    counts = result.counts
    if counts is not None:
        per = unit.split("/")[0].rstrip("s")  # "events/s" -> "event"
        mongo_total = counts.mongo_total()
        if mongo:
            text += "; MongoDB " + (f"{mongo_total:.1f}" if mongo_total is not None else "n/a") + f" commands/{per}"
        text += f"; Redis {counts.redis_total():.1f} commands/{per}"
    return result.rate, text


def table(results: Results, config: Config) -> list[str]:
    http = {name: Http(runs) for name, runs in results.http.items()}
    bare, ignored, enqueued, running = http[BARE], http[IGNORED], http[ENQUEUED], http[WORKER_RUNNING]
    loop = results.open_loop
    noop, noop_text = drain_figure(results.drains[NOOP_PLAIN], "msg/s", mongo=False)
    project, project_text = drain_figure(results.drains[NOOP_PROJECT], "msg/s", mongo=False)
    off, off_text = drain_figure(results.drains[EMAILS_OFF], "events/s", mongo=True)
    on, on_text = drain_figure(results.drains[EMAILS_ON], "events/s", mongo=True)
    bare_p99 = median([pct(r.latencies, 99) * 1000 for r in loop.bare])
    hook_p99 = median([pct(r.latencies, 99) * 1000 for r in loop.webhook])
    e2e = [d * 1000 for d in loop.end_to_end]
    rss = ", ".join(f"{name} {mb:.0f}" for name, mb in results.rss.items())

    def ratio(value: float, ceiling: float) -> str:
        return f"{value / ceiling:.2f}" if math.isfinite(value) and ceiling > 0 else "n/a"

    def cpu_ratio(row: Http) -> str:
        return f"{ratio(row.rate, bare.rate)} (req/s); {row.cpu / bare.cpu:.1f}x CPU/req"

    runs = f"median of {config.runs}"
    rows = [
        f"| path | measured ({runs}) | ratio to its ceiling |",
        "|---|---|---|",
        f"| bare Starlette, one POST route reading the body (ceiling) | {_rate(bare.rate, 'req/s')}, "
        f"p99 {bare.p99:.1f} ms, {bare.cpu:.3f} CPU ms/req | 1 |",
        f"| webhook route, verified but not enqueued (unsubscribed type) | {_rate(ignored.rate, 'req/s')}, "
        f"{ignored.cpu:.3f} CPU ms/req | {cpu_ratio(ignored)} |",
        f"| webhook route, verified and enqueued (worker stopped) | {_rate(enqueued.rate, 'req/s')}, "
        f"p50 {enqueued.p50:.1f} ms, p99 {enqueued.p99:.1f} ms, {enqueued.cpu:.3f} CPU ms/req | "
        f"{cpu_ratio(enqueued)} |",
        f"| webhook route, worker running on the same cores | {_rate(running.rate, 'req/s')}, "
        f"p99 {running.p99:.1f} ms | {ratio(running.rate, bare.rate)} |",
        f"| open loop at {config.rate:.0f}/s: bare / webhook p99 (worker running) | "
        f"{bare_p99:.1f} ms / {hook_p99:.1f} ms | |",
        f"| no-op Dramatiq actor, same broker settings (ceiling) | {noop_text} | 1 |",
        f"| no-op actor inside `python -m workers` (the project's middleware) | {project_text} | "
        f"{ratio(project, noop)} |",
        f"| succeeded path, emails off | {off_text} | {ratio(off, noop)} |",
        f"| succeeded path with its two emails | {on_text} | {ratio(on, noop)} |",
        f"| webhook → enrollment active latency at a fixed {config.rate:.0f} events/s | "
        f"p50 {_ms(pct(e2e, 50))} / p99 {_ms(pct(e2e, 99))} "
        f"({len(e2e)}/{loop.sent} events active, {config.runs} runs) | |",
        f"| RSS of each process after the runs | {rss} MB | |",
    ]
    if results.export is not None:  # one run: a memory figure, not a rate
        export = results.export
        rows.append(f"| ingress RSS while streaming a {export.rows:,}-payment CSV export, to idle | {export.line()} "
                    f"| {export.ratio:.2f} |")  # fmt: skip
    if results.success_pages is not None:  # loads of a restarted ingress to GET /ops/api/queues
        pages = results.success_pages
        for window in pages.api:
            api, page, base = pages.api[window], pages.page[window], pages.baseline
            cold = pages.cold[window]
            rows.append(f"| success metrics `{window}` at {pages.payments:,} payments: API / page, warm; a restarted "
                        f"ingress's first load | {api * 1000:.1f} / {page * 1000:.1f} ms; {cold * 1000:.1f} ms "
                        f"(first measurement ever {pages.measured[window]:.2f} s; baseline {base * 1000:.1f} ms) "
                        f"| {api / base:.1f} / {page / base:.1f}; {cold / base:.1f} |")  # fmt: skip
    return rows


def notes(results: Results, config: Config) -> list[str]:
    http = {name: Http(runs) for name, runs in results.http.items()}
    loop = results.open_loop
    lines = [
        "",
        "Ratios: req/s or msg/s over the ceiling's (1 = as fast as the ceiling); CPU/req as a multiple "
        "of the ceiling's. CPU ms/req: the serving process's own CPU (the bare app's, the ingress's) per request.",
        f"Worker figures: {config.events} messages queued with no worker running, then drained by "
        f"{config.sizes.processes} processes x {config.sizes.threads} threads, timed from the moment every "
        "process is fetching; emails off = the worker consumes only the events' queue (the two emails "
        "per event are written to the outbox and queued, not sent). Each figure comes from the drain's "
        "median run. CPU over that drain:",
    ]
    names = {NOOP_PLAIN: "no-op, plain Dramatiq", NOOP_PROJECT: "no-op, project worker",
             EMAILS_OFF: "succeeded, emails off", EMAILS_ON: "succeeded, emails sent"}  # fmt: skip
    medians = {
        name: median_run(runs, key=lambda r: r.rate if math.isfinite(r.rate) else -1.0)
        for name, runs in results.drains.items()
    }
    lines += [cpu_line(names[name], result) for name, result in medians.items()]
    lines += ["", "CPU per message drained, by process (median run):"]
    lines += [cpu_per_event(names[name], result) for name, result in medians.items()]
    lines += ["", "Commands per event (median run; MongoDB without the drivers' `hello` heartbeats; Redis counts "
              "the calls inside Dramatiq's Lua script too, `evalsha` is one round trip):"]  # fmt: skip
    for name, result in medians.items():
        if result.counts is not None:
            lines.append(f"- {names[name]}: MongoDB {result.counts.mongo_line()}; Redis {result.counts.redis_line()}")
    checks = [f"{names[name]}: " + "; ".join(r.verified for r in runs) for name, runs in results.drains.items()
              if any(r.verified for r in runs)]  # fmt: skip
    lines += ["", "Checked after each drain: " + " | ".join(checks)]
    if results.problems:
        lines += ["", "**Problems** (their figures are missing or partial; the logs were kept):"]
        lines += [f"- {problem}" for problem in results.problems]
    errors = {name: row.errors for name, row in http.items() if row.errors}
    errors_open = sum((r.errors for r in loop.bare + loop.webhook), Counter[str]())
    lines += [
        "",
        f"Load generators: wrk -t{config.wrk_threads} -c{config.connections} -d{config.seconds:g}s used "
        + ", ".join(f"{name} {row.wrk_cpu:.0%}" for name, row in http.items())
        + " of one core (median); answers other than 2xx, socket errors and timeouts: "
        + (", ".join(f"{n} {e}" for n, e in errors.items()) if errors else "none")
        + ".",
        f"Open loop ({config.rate:.0f}/s for {config.seconds:g} s, raw sockets): send lag p99 "
        f"{median([pct(r.lags, 99) * 1000 for r in loop.bare + loop.webhook]):.2f} ms, generator CPU "
        f"{median([r.cpu / r.seconds for r in loop.bare + loop.webhook]):.0%} of one core; the bare app's p99 bounds "
        f"what it adds; failed requests: {dict(errors_open) or 'none'}.",
    ]
    return lines
