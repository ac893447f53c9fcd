"""``make run`` owns its stack: one launcher per var/, and "up" only when its own ingress answers."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devstack.ownership import running
from devstack.procs import Child, free_port, python_module
from tests.e2e.test_make_run import healthy, leader, processes_under

UP = "The payments stack is up"
WAITING = "waiting for its keeper"


def launcher(directory: Path, port: int, name: str) -> Child:
    env = {"PORT": str(port), "REDIS_URL": "", "MONGODB_URI": "", "SMTP_URL": "", "STRIPE_SECRET_KEY": ""}
    return Child(name, python_module("devstack"), directory / "logs", env=env, cwd=directory).start()


def output_lines(child: Child) -> list[str]:
    return [line for line in child.log_path.read_text().splitlines() if line.strip()]


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        pid = parent(pid)
        if pid == ancestor:
            return True
    return False


def redis_servers(directory: Path) -> list[int]:
    """Live redis-server processes working in ``directory`` (Redis rewrites its title: match its binary)."""
    found = []
    for pid in processes_under(directory):
        with contextlib.suppress(OSError):
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes() and running(pid):
                found.append(pid)
    return found


def test_a_second_launcher_is_refused_and_one_after_a_kill_waits_for_what_is_left(tmp_path: Path) -> None:
    var, port = tmp_path / "var", free_port()
    first = launcher(tmp_path, port, "first")
    later: list[Child] = []
    stopped: list[int] = []
    try:
        first.wait_until(lambda: UP in first.log_tail(60), 60, "the first stack")

        # Same var/, same port: refused in one line naming the running launcher, which goes on.
        second = launcher(tmp_path, port, "second")
        later.append(second)
        assert second.proc is not None and second.proc.wait(30) == 2
        lines = output_lines(second)
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], lines
        assert first.alive() and healthy(f"http://127.0.0.1:{port}")

        # kill -9 of the first while its Redis is slow to stop (stopped: its SIGTERM waits).
        before = set(processes_under(var))
        stopped.extend(redis_servers(var))
        assert len(stopped) == 1
        os.kill(stopped[0], signal.SIGSTOP)
        first.signal(signal.SIGKILL)
        assert first.proc is not None and first.proc.wait(10) == -signal.SIGKILL

        third = launcher(tmp_path, port, "third")
        later.append(third)
        third.wait_until(lambda: WAITING in third.log_tail(), 30, "the third launcher waiting for the leftovers")
        assert redis_servers(var) == stopped  # no second Redis on var/redis meanwhile
        os.kill(stopped[0], signal.SIGCONT)
        third.wait_until(lambda: UP in third.log_tail(60), 60, "the third stack")

        # Up on its own processes only: nothing of the first is left, one Redis, one stand-in.
        now = processes_under(var)
        assert not before & set(now)
        assert all(descends(pid, third.pid) for pid in now)
        assert len(redis_servers(var)) == 1 and leader(var, "devstack.mongo_standin", third.pid)
        assert healthy(f"http://127.0.0.1:{port}")
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for child in (*later, first):
            child.stop(30)
    assert processes_under(var) == []


class _AlwaysOk(BaseHTTPRequestHandler):
    """A stray server answering 200 to anything, as a leftover ingress answers the health check."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_foreign_process_on_the_ingress_port_is_not_reported_up(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysOk)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    port = server.server_address[1]
    refused = launcher(tmp_path, port, "launcher")
    try:
        assert refused.proc is not None and refused.proc.wait(30) == 2
    finally:
        refused.stop()
        server.shutdown()
        server.server_close()
        serving.join(5)
    lines = output_lines(refused)
    assert len(lines) == 1 and f"port {port}" in lines[0] and f"pid {os.getpid()}" in lines[0], lines
    assert UP not in refused.log_path.read_text()
    assert processes_under(tmp_path / "var") == []
