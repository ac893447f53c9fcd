"""A launcher killed with SIGKILL leaves no child running: the keeper stops their process groups."""

from __future__ import annotations

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
