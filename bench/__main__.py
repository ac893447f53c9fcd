"""``python -m bench``: the overall benchmark (see ``bench/overall.py``), as a markdown report;
``python -m bench soak``: its worker memory soak alone (``bench/soak.py``).

The measured code (``BENCH_CODE``, else this checkout) goes first on the import path before any
project module is imported, hence the imports inside ``main``.
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from datetime import UTC, datetime

from bench.procstat import TICK, load, machine_jiffies
from bench.target import describe, use_code_root


def own_cpu() -> float:
    """CPU seconds of this process and every child it reaped (all of the stack, once stopped)."""
    ours = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(r.ru_utime + r.ru_stime for r in ours)


def main() -> int:
    root = use_code_root()
    only_soak = sys.argv[1:] == ["soak"]
    if shutil.which("wrk") is None and not only_soak:
        print("wrk is not installed: run `bash bench/install_wrk.sh` (make bench does)", file=sys.stderr)
        return 2
    from bench.overall import Config, measure
    from bench.report import notes, table
    from bench.soak import section

    config = Config.from_env()
    started, machine0, cpu0 = time.monotonic(), machine_jiffies(), own_cpu()
    header = [
        f"# Benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Code: {describe(root)}.",
        f"Machine at start: {load()}. Settings: BENCH_SECONDS={config.seconds:g} BENCH_EVENTS={config.events} "
        f"BENCH_RATE={config.rate:g} BENCH_RUNS={config.runs} BENCH_SOAK_EVENTS={config.soak_events}; "
        f"worker {config.sizes.processes} processes x {config.sizes.threads} threads (the rest of its settings: "
        "the project's defaults).",
        "",
    ]
    print("\n".join(header), flush=True)
    results = measure(config, only_soak)
    (busy0, all0), (busy1, all1) = machine0, machine_jiffies()
    others = max(0.0, (busy1 - busy0) / TICK - (own_cpu() - cpu0)) / max(1e-9, (all1 - all0) / TICK)
    footer = [
        "",
        f"Machine at end: {load()}; processes outside the benchmark used {others:.0%} of the machine during it. "
        f"Took {time.monotonic() - started:.0f} s.",
    ]
    report = [] if only_soak else table(results, config) + notes(results, config)
    if results.soak is not None:
        report += section(results.soak)
    report += footer
    print("\n".join(report))
    out = root / "var" / "bench" / ("soak.md" if only_soak else "latest.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header + report) + "\n")
    print(f"\n(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
