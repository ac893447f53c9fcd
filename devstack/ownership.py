"""One launcher per ``var/``, and "up" only when its own ingress answers.

``make run`` holds ``var/launcher.lock`` (``flock``, its pid written in it) for its whole life, and
hands the locked descriptor to its keeper (``devstack.procs``): after a ``kill -9`` of the launcher
the lock stays held until the keeper has stopped every child. So a second launcher on the same
``var/`` either refuses (the first one runs) or waits for what is left of it; it never starts a
second Redis or MongoDB stand-in on the same files.

The ingress port is another matter: anything listening there answers the health check, so the
launcher refuses a taken port, and the ingress counts as up only once its own child holds it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

LOCK_NAME = "launcher.lock"
#: The keeper stops what is left within 10 s of SIGTERM and 5 s of SIGKILL; some slack on top.
LEFTOVER_WAIT = 30.0


class OwnershipError(Exception):
    """Another launcher, or another process, holds what this launcher needs."""


def running(pid: int) -> bool:
    """Is ``pid`` a live process? A zombie (dead, not yet reaped) is not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _recorded_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not written yet: its launcher has just taken the lock
        return None


def take_var(var: Path, notice: Callable[[str], None], timeout: float = LEFTOVER_WAIT) -> int:
    """Lock ``var`` for this process's life; return the locked descriptor (for the keeper to hold too).

    Raises OwnershipError, in one line, when a live launcher holds it or its leftovers outlast ``timeout``.
    """
    var.mkdir(parents=True, exist_ok=True)
    path = var / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pid = _recorded_pid(path)
        if pid is not None and running(pid):
            os.close(fd)
            raise OwnershipError(f"another make run (pid {pid}) is running on {var}/; stop it first (kill {pid})")
        if time.monotonic() > deadline:
            os.close(fd)
            raise OwnershipError(f"what is left of make run (pid {pid}) still holds {path} after {timeout:.0f} s")
        if not waiting and pid is not None:  # its launcher is gone; its keeper is stopping the children
            notice(f"make run (pid {pid}) died; waiting for its keeper to stop what is left of it…")
            waiting = True
        time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def port_free(host: str, port: int) -> bool:
    """Could a server bind ``host:port`` now? (SO_REUSEADDR, as uvicorn: TIME_WAIT leftovers do not count.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening_sockets(port: int) -> set[str] | None:
    """``socket:[inode]`` of every socket listening on ``port``; None without procfs."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.add(f"socket:[{fields[9]}]")
    return found


def _holds(pid: int | str, sockets: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                return True
        except OSError:
            continue
    return False


def listens(pid: int, port: int) -> bool:
    """Does process ``pid`` hold a socket listening on ``port``? True without procfs (cannot tell)."""
    sockets = _listening_sockets(port)
    return True if sockets is None else bool(sockets) and _holds(pid, sockets)


def listeners(port: int) -> list[int]:
    """Pids (of this user's processes) holding a socket listening on ``port``."""
    sockets = _listening_sockets(port)
    if not sockets:
        return []
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _holds(entry, sockets)]


def check_port(host: str, port: int, variable: str) -> None:
    """Raise OwnershipError, in one line naming the port and its holder, unless ``port`` is free."""
    if port_free(host, port):
        return
    holders = ", ".join(f"pid {pid} ({_command(pid)})" for pid in listeners(port)) or "another process"
    raise OwnershipError(f"port {port} ({variable}) is already taken by {holders}; stop it or set {variable}")


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"
