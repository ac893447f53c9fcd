"""A Dramatiq actor that does nothing: the ceiling of the worker figures.

Imported by a Dramatiq CLI whose ``--path`` (or ``PYTHONPATH``) holds this folder, as
``bench_noop``; ``BENCH_NOOP`` says under which worker:

- ``plain``: ``python -m dramatiq bench_noop``: the project's broker (``adapters.queue.build_broker``
  with the same settings) and Dramatiq's default middleware, so Dramatiq itself on this broker;
- ``project``: ``python -m workers bench_noop --queues bench-noop``: imported after
  ``workers.entry`` into the project's own worker processes, so under the project's broker and all
  its middleware (signature check, durable retries, metrics, sweeps).

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


#: The Dramatiq CLI takes the broker from the first module's ``broker``.
broker = _declare()
