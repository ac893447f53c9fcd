"""Count the MongoDB commands and Redis round trips a worker spends on each message (issue 11).

Counts, not timings: a test can assert them exactly, whatever the machine's load.

- MongoDB: a pymongo ``CommandListener``. pymongo takes listeners only when a client is made and
  has no way to remove one, so one listener is registered for the whole session (``install``
  before the worker's client exists) and records only while a ``Counts`` is active.
- Redis: ``redis.connection.AbstractConnection`` patched for the test: each
  ``send_packed_command`` is one round trip (a pipeline sends all its commands in one), each
  command packed is one command.

Every record names the thread that made the call, so a test keeps what Dramatiq's worker
threads did (the actor, its middleware, the ack) apart from its consumer threads' polling,
the periodic sweeps' threads and the test's own calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from dramatiq.worker import WorkerThread
from pymongo import monitoring
from redis.connection import AbstractConnection


@dataclass(frozen=True)
class Call:
    thread: threading.Thread
    name: str  # a MongoDB command and its collection, or a Redis command and (for Dramatiq's script) its verb


@dataclass
class Counts:
    mongo: list[Call] = field(default_factory=list)
    redis_commands: list[Call] = field(default_factory=list)
    redis_round_trips: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, calls: list[Call], name: str) -> None:
        with self.lock:
            calls.append(Call(threading.current_thread(), name))

    @staticmethod
    def by_workers(calls: Sequence[Call]) -> list[str]:
        """What Dramatiq's worker threads did: the actors, their middleware and the acks."""
        return [call.name for call in calls if isinstance(call.thread, WorkerThread)]

    @staticmethod
    def by_this_thread(calls: Sequence[Call]) -> list[str]:
        """What the calling thread (the test's) did."""
        return [call.name for call in calls if call.thread is threading.current_thread()]


class _Listener(monitoring.CommandListener):
    counts: Counts | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        counts = self.counts
        if counts is not None:
            target = event.command.get(event.command_name)
            collection = f" {target}" if isinstance(target, str) else ""
            counts.add(counts.mongo, f"{event.command_name}{collection}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_LISTENER = _Listener()
_installed = False


def install() -> None:
    """Register the MongoDB listener (once per session); clients made after it report to it."""
    global _installed
    if not _installed:
        monitoring.register(_LISTENER)
        _installed = True


def _name(args: Sequence[Any]) -> str:
    """``EVALSHA enqueue emails`` for Dramatiq's dispatch script, else the command's name."""
    words = [a.decode() if isinstance(a, bytes) else str(a) for a in args[:7]]
    if words and words[0].upper() == "EVALSHA" and len(words) >= 7:
        return f"EVALSHA {words[4]} {words[6]}"  # sha, numkeys, namespace, verb, timestamp, queue
    return words[0].upper() if words else "?"


@contextmanager
def counting() -> Iterator[Counts]:
    """Record every MongoDB command and Redis call made in the block."""
    install()
    counts = Counts()
    send_command: Callable[..., Any] = AbstractConnection.send_command
    pack_commands: Callable[..., Any] = AbstractConnection.pack_commands
    send_packed: Callable[..., Any] = AbstractConnection.send_packed_command

    def counted_send_command(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        counts.add(counts.redis_commands, _name(args))
        return send_command(self, *args, **kwargs)

    def counted_pack_commands(self: AbstractConnection, commands: Sequence[Sequence[Any]]) -> Any:
        for command in commands:
            counts.add(counts.redis_commands, _name(command))
        return pack_commands(self, commands)

    def counted_send_packed(self: AbstractConnection, command: Any, check_health: bool = True) -> Any:
        counts.add(counts.redis_round_trips, "round trip")
        return send_packed(self, command, check_health)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AbstractConnection, "send_command", counted_send_command)
        patch.setattr(AbstractConnection, "pack_commands", counted_pack_commands)
        patch.setattr(AbstractConnection, "send_packed_command", counted_send_packed)
        _LISTENER.counts = counts
        try:
            yield counts
        finally:
            _LISTENER.counts = None
