"""Child processes for the local stack and the tests: free ports, readiness, clean stop.

Every child runs in its own session (process group) so that stopping it also stops anything it
forked (the Dramatiq CLI forks worker processes). A launcher that dies without stopping them
(``kill -9``, a test run killed at its time limit) leaves no orphan either: a keeper process
holds the read end of a pipe only the launcher writes to, and on its end of file stops every
group still registered with it (``devstack/keeper.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: The keeper (its file says what it does), run as a script: it imports nothing of ours.
_KEEPER = str(Path(__file__).with_name("keeper.py"))


class _Keeper:
    """This process's keeper, started with its first child."""

    _lock = threading.Lock()
    _process: subprocess.Popen[str] | None = None
    _pipe: IO[str] | None = None
    _pid: int | None = None
    _held: tuple[int, ...] = ()

    @classmethod
    def hold(cls, fd: int) -> None:
        with cls._lock:
            if cls._pipe is not None and cls._pid == os.getpid():
                raise RuntimeError("the keeper already runs: hand it a descriptor before the first child starts")
            cls._held += (fd,)

    @classmethod
    def register(cls, group: int, keep: bool) -> None:
        with cls._lock:
            if cls._pipe is None or cls._pid != os.getpid():  # none yet, or this is a fork
                if not keep:
                    return
                keeper = subprocess.Popen(
                    [sys.executable, "-I", _KEEPER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    pass_fds=cls._held,
                    start_new_session=True,  # a Ctrl-C to the launcher's group is the launcher's to handle
                )
                cls._process, cls._pipe, cls._pid = keeper, keeper.stdin, os.getpid()
            assert cls._pipe is not None
            cls._pipe.write(f"{'+' if keep else '-'}{group}\n")
            cls._pipe.flush()


def hold_until_children_stop(fd: int) -> None:
    """Have the keeper inherit ``fd`` (a lock), so that it stays open until every child has stopped.

    The keeper outlives a launcher killed with SIGKILL by the time it takes to stop its children;
    a lock it holds tells the next launcher that they are still there. Call before the first child.
    """
    _Keeper.hold(fd)


class Child:
    """One child process with its output in a log file.

    Parameters:
      name(str): short name used in messages and the log file name.
      argv(list[str]): the command; ``sys.executable`` stands for this interpreter.
      log_dir(Path): where ``<name>.log`` is written.
      env(dict): extra environment variables.
      cwd(Path): working directory (default: the launcher's).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        _Keeper.register(self.proc.pid, keep=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_tcp(self, host: str, port: int, timeout: float = 20.0) -> None:
        """Wait until the child accepts TCP connections; raise with its log tail if it dies or times out."""
        self.wait_until(lambda: port_open(host, port), timeout, f"port {host}:{port}")

    def wait_until(self, ready: Callable[[], object], timeout: float, what: str) -> None:
        """Poll ``ready`` until it is truthy; raise with the log tail if the child dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited before {what} was ready:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: {what} not ready after {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the child, SIGKILL its group after ``timeout``; return the exit code.

        Only the leader gets SIGTERM: a supervisor such as the Dramatiq CLI forwards it to its
        workers, and a second SIGTERM sent to them directly would make them exit hard.
        """
        if self.proc is None:
            return None
        if self.alive():
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        # The leader is gone; make sure nothing it forked lingers in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        _Keeper.register(self.pid, keep=False)  # its group id may be someone else's from now on
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
