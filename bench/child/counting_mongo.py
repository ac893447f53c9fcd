"""The MongoDB stand-in, counting the commands it serves: ``python bench/child/counting_mongo.py ARGS``.

The benchmark reports MongoDB commands per event, and the stand-in has no ``serverStatus``
opcounters. This wraps every handler of its command table with a counter and adds one command,
``benchCommandCounts``, that answers ``{"counts": {name: calls}}``. Everything else is
``python -m devstack.mongo_standin ARGS`` unchanged (the same journal, snapshot and group commit
the local stack runs). Counting on the server sees every client (ingress, each worker process)
without touching them. A stand-in whose command table is laid out differently runs uncounted;
the benchmark then prints n/a.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

#: The command the benchmark sends to read the counts (not counted itself).
COUNTS_COMMAND = "benchCommandCounts"

counts: Counter[str] = Counter()


def counting(name: str, handler: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def counted(ctx: Any, cmd: dict[str, Any]) -> dict[str, Any]:
        counts[name] += 1  # commands run one at a time on the server's loop: no lock needed
        return handler(ctx, cmd)

    return counted


def install() -> None:
    from devstack.mongo_standin import commands  # noqa: F401 - registers every handler
    from devstack.mongo_standin.registry import COMMANDS

    for name, handler in list(COMMANDS.items()):
        COMMANDS[name] = counting(name, handler)
    COMMANDS[COUNTS_COMMAND] = lambda ctx, cmd: {"counts": dict(counts)}


def main() -> int:
    try:
        install()
    except (ImportError, AttributeError) as exc:
        logging.getLogger("bench").warning("commands are not counted: %r", exc)
    from devstack.mongo_standin.__main__ import main as standin_main

    return standin_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
