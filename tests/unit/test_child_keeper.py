"""A launcher killed with SIGKILL leaves no child running: the keeper stops their process groups."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LAUNCHER = """
import sys
from pathlib import Path
from devstack.procs import Child
# A child that forks a grandchild into its own group, as the Dramatiq CLI forks its workers.
argv = [sys.executable, "-c", "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "print(p.pid, flush=True); time.sleep(600)"]
child = Child("sleeper", argv, Path(sys.argv[1])).start()
print(child.pid, flush=True)
child.wait_until(lambda: (Path(sys.argv[1]) / "sleeper.log").read_text().strip(), 20, "the grandchild")
print((Path(sys.argv[1]) / "sleeper.log").read_text().strip(), flush=True)
sys.stdin.read()  # until the test kills it
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_children_and_their_forks_die_with_a_launcher_killed_by_sigkill(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    child, grandchild = int(launcher.stdout.readline()), int(launcher.stdout.readline())
    assert alive(child) and alive(grandchild)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(10)
    deadline = time.monotonic() + 20
    while (alive(child) or alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child) and not alive(grandchild)
    assert launcher.stdin is not None
    launcher.stdin.close()
    launcher.stdout.close()


#: A launcher that hands a lock to its keeper, then starts a child slow to stop: on SIGTERM it
#: waits for the file the test creates.
HOLDER = """
import fcntl, os, sys
from pathlib import Path
from devstack.procs import Child, hold_until_children_stop
lock = os.open(Path(sys.argv[1]) / "lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(lock, fcntl.LOCK_EX)
hold_until_children_stop(lock)
slow = ("import os, signal, sys, time\\n"
        "def finish(*_):\\n"
        "    print('stopping', flush=True)\\n"
        "    while not os.path.exists(sys.argv[1]): time.sleep(0.02)\\n"
        "    sys.exit(0)\\n"
        "signal.signal(signal.SIGTERM, finish); print('ready', flush=True); time.sleep(600)")
child = Child("slow", [sys.executable, "-c", slow, str(Path(sys.argv[1]) / "done")], Path(sys.argv[1])).start()
child.wait_until(lambda: "ready" in (Path(sys.argv[1]) / "slow.log").read_text(), 20, "the slow child")
print(child.pid, flush=True)
sys.stdin.read()
"""


def lock_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_descriptor_handed_to_the_keeper_stays_open_until_the_children_are_gone(tmp_path: Path) -> None:
    """make run's lock on var/ outlives a launcher killed with SIGKILL exactly as long as its children."""
    root = Path(__file__).resolve().parents[2]
    launcher = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None and launcher.stdin is not None
    child = int(launcher.stdout.readline())
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(10)
    try:
        # The keeper sent SIGTERM; the child waits for the file, and the lock stays held meanwhile.
        deadline = time.monotonic() + 20
        while "stopping" not in (tmp_path / "slow.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "stopping" in (tmp_path / "slow.log").read_text()
        assert alive(child) and not lock_free(tmp_path / "lock")
    finally:
        (tmp_path / "done").touch()
        launcher.stdin.close()
        launcher.stdout.close()
    deadline = time.monotonic() + 20
    while not lock_free(tmp_path / "lock") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock_free(tmp_path / "lock") and not alive(child)
