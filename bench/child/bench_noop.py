"""A Dramatiq actor that does nothing: the ceiling of the worker figures.

Imported into worker processes of ``python -m workers``; ``BENCH_NOOP`` says how:

- ``plain`` (``plain_workers.py``, Dramatiq's CLI with the project's worker options): the project's broker
  (``adapters.queue.build_broker``, the same settings) with Dramatiq's default middleware, so
  Dramatiq itself on this broker, under the project's worker CLI options;
- ``project``: ``python -m workers bench_noop --queues bench-noop`` with this folder on
  ``PYTHONPATH``: imported after ``workers.entry``, so under the project's broker and all its
  middleware (signature check, durable retries, metrics, sweeps).

Without ``BENCH_NOOP`` nothing is declared: the benchmark imports this module for its names only.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq

QUEUE = "bench-noop"
ACTOR = "bench_noop"


def noop(event: Any) -> None:
    """Takes the same 3 KB event the real actor gets, and does nothing with it."""


def _declare() -> dramatiq.Broker | None:
    mode = os.environ.get("BENCH_NOOP")
    built: dramatiq.Broker
    if mode == "plain":
        from dramatiq.middleware import default_middleware

        from adapters.queue import build_broker
        from adapters.settings import load_settings

        built = build_broker(load_settings(), [m() for m in default_middleware])
    elif mode == "project":
        built = dramatiq.get_broker()  # the one workers.entry built and set
    else:
        return None
    dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, broker=built)(noop)
    return built


#: The Dramatiq CLI takes the broker from its first module's ``broker`` (here, in ``plain`` mode).
broker = _declare()
