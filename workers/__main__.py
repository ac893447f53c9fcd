"""``python -m workers``: check the configuration, then run the Dramatiq worker CLI."""

from __future__ import annotations

import os
import sys

from adapters.settings import consumer_environment, load_or_exit


def main() -> int:
    settings = load_or_exit()
    os.environ.update(consumer_environment(settings))  # before Dramatiq is imported: it reads them then
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    args = make_argument_parser().parse_args(
        [
            "workers.entry",
            *sys.argv[1:],  # extra modules to import, or any Dramatiq CLI option
            "--processes",
            str(settings.worker_processes),
            "--threads",
            str(settings.worker_threads),
            # Finish in-flight messages within the 30 s that Heroku and Compose give before SIGKILL.
            "--worker-shutdown-timeout",
            "25000",
        ]
    )
    return int(dramatiq_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
