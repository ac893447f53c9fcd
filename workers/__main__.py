"""``python -m workers``: check the configuration, then run the Dramatiq worker CLI."""

from __future__ import annotations

import os
import sys

from adapters.settings import Settings, load_or_exit


def consumer_environment(settings: Settings) -> dict[str, str]:
    """How each worker process's Dramatiq consumers poll Redis, as the variables Dramatiq reads.

    Dramatiq reads both when ``dramatiq.worker`` is imported (its CLI has no option for them), so
    they are set before the import, and the worker processes inherit them.

    - ``dramatiq_queue_prefetch``: messages a process holds per queue, running or waiting for a
      thread; two per thread by default (``WORKER_PREFETCH=0``). At one per thread a consumer
      whose threads are all busy may not fetch, sleeps its back-off, and finishing threads wait
      for it. A killed process strands at most this many per queue, back within about 40 s
      (``RequeueDeadWorkers``).
    - ``dramatiq_worker_timeout`` (``WORKER_POLL_MS``, 20 ms): the cap of a consumer's back-off
      (5-10 ms after the first empty poll, doubling), idle or with all its prefetch in hand.
      Dramatiq's default, 1 s, lets a message that finds the consumer asleep wait up to a second.
      The price: an idle consumer (a queue, or its delay queue) polls Redis about 65 times a
      second, so an idle process of six consumers makes some 390 cheap calls a second, and idle
      worker threads wake as often.

    Measured with an actor that sleeps 20 ms, 8 threads, on this project's loaded 2-core machine
    (drain rate of 1,200 queued messages against the 400/s 8 threads can do; p99 enqueue → actor
    start at one message per 70 ms; ranges over two runs): 1 s and one per thread, 56 % and 479
    ms; 1 s and two per thread, 90 % and 371 ms; 20 ms and one per thread, 64-70 % and 26-30 ms;
    20 ms and two per thread, 83-87 % and 19-82 ms (the machine's load); 20 ms and four per
    thread, 86-96 % and 18-28 ms, which would strand twice as many.
    """
    prefetch = settings.worker_prefetch or 2 * settings.worker_threads
    return {"dramatiq_queue_prefetch": str(prefetch), "dramatiq_worker_timeout": str(settings.worker_poll_ms)}


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
