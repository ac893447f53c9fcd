"""``python -m workers`` running plain Dramatiq with a no-op actor: the ceiling of the worker figures.

``python bench/child/plain_workers.py --queues bench-noop`` runs ``workers.__main__.main``, so the
Dramatiq CLI gets the options and consumer environment the project's worker has at the commit
measured (processes, threads, prefetch, poll interval, shutdown timeout), but each worker process
imports ``bench_noop`` (in ``plain`` mode: the project's broker with Dramatiq's default
middleware) where it would import ``workers.entry``. A meta-path finder makes the swap, so the
module is imported in each forked worker process, never in this one: each must build its own
broker (its own id in Redis's heartbeats and acknowledgements).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

NOOP = Path(__file__).with_name("bench_noop.py")
ENTRY = "workers.entry"


class EntrySwap(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_file_location(fullname, NOOP) if fullname == ENTRY else None


def main() -> int:
    os.environ["BENCH_NOOP"] = "plain"
    sys.meta_path.insert(0, EntrySwap())
    from workers.__main__ import main as workers_main

    return int(workers_main())


if __name__ == "__main__":
    sys.exit(main())
