"""Writing a snapshot in a forked child, as Redis's BGSAVE does: the fork is the consistent cut.

Encoding the whole state takes time that grows with the data
(docs/performance.md#figures-from-code-comments), and every command waits while it runs under the
engine's lock. Forking takes a few milliseconds instead: the child gets a copy-on-write image of the
state as it is at the fork, encodes and writes it, and exits, while the parent goes on serving
commands. Callers rely on: ``start`` being called under the engine's lock (the cut), and
``Writer.wait`` returning once the file is whole on disk, or raising ``OSError`` naming why the
child could not write it.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

from . import snapshot
from .backend import StandinClient

#: prctl(2)'s option: the signal the kernel sends this process when its parent dies.
PR_SET_PDEATHSIG = 1


class Writer:
    """A forked child writing one snapshot."""

    def __init__(self, pid: int, errors: int) -> None:
        self.pid, self.errors = pid, errors

    def wait(self) -> None:
        """Block until the child is done (run it off the event loop)."""
        with os.fdopen(self.errors, "rb") as pipe:
            reason = pipe.read().decode(errors="replace")  # EOF: the child exited
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise OSError(f"the snapshot writer (pid {self.pid}) failed: {reason or f'exit code {code}'}")


def start(client: StandinClient, path: Path, journal: int | None) -> Writer:
    """Fork a child that writes ``client``'s state, as it is now, to ``path``."""
    parent = os.getpid()
    errors, report = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(errors)
            _die_with(parent)
            snapshot.write_atomic(path, snapshot.dump(client, journal=journal))
            code = 0
        except BaseException as error:  # reported to the parent, whatever it is
            os.write(report, repr(error).encode())
        finally:
            os._exit(code)
    os.close(report)
    return Writer(pid, errors)


def _die_with(parent: int) -> None:
    """Stop this child when the stand-in dies (Linux): an orphan finishing late could put an old
    snapshot in place of one that a restarted stand-in wrote since, whose journal files are gone."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError):
        return  # not Linux: the parent's stop waits for the child anyway
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
