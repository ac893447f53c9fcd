"""A Dramatiq actor that does nothing: the ceiling of the worker figures.

Imported into worker processes of ``python -m workers``; ``BENCH_NOOP`` says how:

- ``plain`` (``plain_workers.py``, Dramatiq's CLI with the project's worker options): the project's broker
  (``adapters.queue.build_broker``, the same settings) with Dramatiq's own consumer and default
  middleware, so Dramatiq itself on this broker, under the project's worker CLI options (a checkout
  from before the worker's consumer moved to ``workers/`` consumes through it instead);
- ``project``: ``python -m workers bench_noop --queues bench-noop`` with this folder on
  ``PYTHONPATH``: imported after ``workers.entry``, so under the project's broker and all its
  middleware (signature check, durable retries, metrics, sweeps).

Without ``BENCH_NOOP`` nothing is declared: the benchmark imports this module for its names only.
"""

from __future__ import annotations

import inspect
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
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq.middleware import default_middleware

        from adapters import queue
        from adapters.settings import load_settings

        class PlainBroker(queue.Broker):
            consumer_class = RedisBroker.consumer_class  # Dramatiq's own: the project's is the worker's

        # An older checkout's build_broker takes no kind: its broker consumes through the project's consumer.
        kind = [PlainBroker] if "kind" in inspect.signature(queue.build_broker).parameters else []
        built = queue.build_broker(load_settings(), [m() for m in default_middleware], *kind)
    elif mode == "project":
        built = dramatiq.get_broker()  # the one workers.entry built and set
    else:
        return None
    dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, broker=built)(noop)
    return built


#: The Dramatiq CLI takes the broker from its first module's ``broker`` (here, in ``plain`` mode).
broker = _declare()
