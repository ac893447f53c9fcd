"""The keeper (``devstack.procs``): stops a launcher's children once the launcher is gone.

Run as a script (``python -I devstack/keeper.py``, standard library only): it reads ``+PGID`` and
``-PGID`` lines on stdin, the launcher's pipe. At end of file (the launcher exited, however it
went, ``kill -9`` included) it stops the groups one at a time, the last started first (the apps
before the Redis they need to finish: as ``Stack.stop``): SIGTERM to the group's leader, then to
the rest of the group once the leader is gone. Whatever still runs 10 s after the first SIGTERM
gets SIGKILL. It exits once none runs: a descriptor it inherited (``make run``'s lock on
``var/``) is held until then.

SIGTERM goes to the leader first, as ``Child.stop`` does: the Dramatiq CLI passes it on to its
workers, and a second one sent to them directly makes them exit hard (which can hang on their
threads until the SIGKILL).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

GRACE = 10.0
#: After SIGKILL: the kernel tears a process down (closing its ports and files) before it is a zombie.
KILL_WAIT = 5.0
PROCFS = os.path.isdir("/proc/self")


def _send(groups: set[int], kill: Callable[[int, int], None], group: int, sig: int) -> None:
    try:
        kill(group, sig)
    except ProcessLookupError:
        pass  # gone; the next look at what runs drops it
    except PermissionError:
        groups.discard(group)  # the id is someone else's by now


def _running(groups: set[int]) -> tuple[set[int], set[int]]:
    """(pids, group ids) of the processes still running; a zombie (dead, not yet reaped) is not."""
    if not PROCFS:  # no way to tell a zombie: what signal 0 reaches

        def reaches(kill: Callable[[int, int], None], target: int) -> bool:
            try:
                kill(target, 0)
            except OSError:
                return False
            return True

        return {g for g in groups if reaches(os.kill, g)}, {g for g in groups if reaches(os.killpg, g)}
    pids: set[int] = set()
    running: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            pids.add(int(entry))
            running.add(int(fields[2]))
    return pids, running


def stop(groups: set[int], sig: int, seconds: float, leaders_first: bool) -> None:
    """Send ``sig`` (to the leaders first, if asked), and wait up to ``seconds`` until no group runs."""
    told: set[int] = set()
    for group in list(groups):
        _send(groups, os.kill if leaders_first else os.killpg, group, sig)
        if not leaders_first:
            told.add(group)
    deadline = time.monotonic() + seconds
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        pids, running = _running(groups)
        groups &= running
        for group in groups - told - pids:  # the leader is gone, not necessarily what it forked
            _send(groups, os.killpg, group, sig)
            told.add(group)


def main() -> None:
    started: dict[int, None] = {}  # in the order they were registered
    for line in sys.stdin:
        if line[0] == "+":
            started[int(line[1:])] = None
        else:
            started.pop(int(line[1:]), None)
    deadline = time.monotonic() + GRACE
    left: set[int] = set()
    for group in reversed(started):
        one = {group}
        stop(one, signal.SIGTERM, deadline - time.monotonic(), leaders_first=True)
        left |= one
    stop(left, signal.SIGKILL, KILL_WAIT, leaders_first=False)


if __name__ == "__main__":
    main()
