"""``python -m ingress``: check the configuration, then serve the app with uvicorn."""

from __future__ import annotations

import gc
import sys

import uvicorn

from adapters.logs import configure_logging
from adapters.settings import load_or_exit
from ingress.composition import create_app
from ingress.server import EdgeLimits, protocol_class

#: Allocations between young collections (Python's default is 700), then the older generations'.
GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    """Collect less often, and never again through what start-up built.

    Every request allocates short-lived tracked objects (scope, coroutines, tasks, futures, the
    message), so with the default threshold (700) the collector ran every few requests and, as
    requests in flight kept theirs alive, kept moving them into older generations to scan again: a
    real share of the webhook's CPU (docs/performance.md#figures-from-code-comments). ``gc.freeze``
    leaves the modules and the app built at start-up out of every later collection. Cycles are still
    collected, only in larger batches.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main() -> int:
    settings = load_or_exit()
    configure_logging(settings.log_level)
    app = create_app(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        # uvloop when installed (uvicorn[standard]; else asyncio): the bare HTTP cycle costs less CPU
        # (docs/performance.md#figures-from-code-comments). HTTP/1.1 is httptools (always in
        # uvicorn[standard]) held to the head size cap and the head and body deadlines
        # (ingress/server.py); no WebSocket upgrades.
        loop="auto",
        http=protocol_class(EdgeLimits.of(settings)),
        ws="none",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
