"""``python -m devstack.mongo_standin [--host H] [--port N] [--snapshot PATH] [--snapshot-interval S]``

With ``--snapshot PATH``, the journal files ``PATH.journal.N`` sit next to it (``journal.py``).
Exit status 0 after SIGTERM/SIGINT (final snapshot written), 1 if the snapshot or a journal record
can't be read, the address can't be bound or mongomock's internals changed (``internals.py``),
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack import aio

from .commands import Engine
from .internals import check_mongomock_internals
from .journal import recover
from .server import StandinServer
from .snapshot import SnapshotError

log = logging.getLogger("devstack.mongo_standin")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.mongo_standin",
        description="A MongoDB stand-in: the MongoDB wire protocol over TCP, mongomock semantics.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=27017, help="TCP port; 0 picks a free one (default 27017)")
    parser.add_argument(
        "--snapshot", type=Path, help="state file: loaded at start, saved while running, with a journal next to it"
    )
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=60.0,
        # mongod checkpoints every 60 s too; the journal makes every write durable meanwhile, and a
        # snapshot (a forked child encoding the whole state) costs CPU and disk that grow with the data.
        help="seconds between snapshots when something changed (default 60)",
    )
    args = parser.parse_args(argv)
    if args.snapshot_interval <= 0:
        parser.error("--snapshot-interval must be positive")
    return args


async def run(args: argparse.Namespace) -> None:
    engine = Engine(*recover(args.snapshot)) if args.snapshot else Engine()
    server = StandinServer(engine, args.host, args.port, args.snapshot, args.snapshot_interval)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="mongo-standin %(levelname)s %(message)s")
    try:
        check_mongomock_internals()
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    try:
        aio.run(run(args))  # on uvloop when installed: a quarter less CPU per command
    except SnapshotError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # typically: the port is taken
        log.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
