"""Plain Dramatiq with a no-op actor, under the project's worker options: the worker figures' ceiling.

``python bench/child/plain_workers.py --queues bench-noop`` runs Dramatiq's CLI with what
``python -m workers`` gives it at the commit measured: the consumer environment (prefetch, poll
interval, from ``adapters.settings.consumer_environment``) and the processes and threads of the
settings; each worker process imports ``bench_noop`` in ``plain`` mode (the project's broker with
Dramatiq's default middleware), so each builds its own broker (its own id in Redis's heartbeats).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from adapters.settings import consumer_environment, load_or_exit


def main() -> int:
    settings = load_or_exit()
    os.environ.update(consumer_environment(settings))  # before Dramatiq is imported: it reads them then
    os.environ["BENCH_NOOP"] = "plain"
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    options = ["--processes", str(settings.worker_processes), "--threads", str(settings.worker_threads)]
    here = str(Path(__file__).resolve().parent)  # where each worker process finds ``bench_noop``
    args = make_argument_parser().parse_args(["bench_noop", "--path", here, *sys.argv[1:], *options])
    return int(dramatiq_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
