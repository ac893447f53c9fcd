"""``run(coroutine)``: ``asyncio.run`` on uvloop when it is installed (``uvicorn[standard]`` brings it).

The local stack's asyncio servers (the SMTP sink, the MongoDB stand-in) and the benchmark's
open-loop generator share this machine's cores with what they serve or measure: uvloop's
transports cost them less CPU (docs/performance.md#figures-from-code-comments).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
