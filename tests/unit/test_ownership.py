"""``make run``'s lock on ``var/`` and its checks of the ingress port (devstack/ownership.py)."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.ownership import LOCK_NAME, OwnershipError, check_port, listens, port_free, take_var


def test_a_second_lock_on_the_same_var_is_refused_naming_the_live_holder(tmp_path: Path) -> None:
    fd = take_var(tmp_path, notice=print)
    try:
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(OwnershipError, match=rf"another make run \(pid {os.getpid()}\) is running"):
            take_var(tmp_path, notice=print)
    finally:
        os.close(fd)
    os.close(take_var(tmp_path, notice=print))  # free again once its holder closed it


def test_a_lock_left_by_a_dead_launcher_is_waited_for(tmp_path: Path) -> None:
    """Its keeper still holds it while it stops the children: wait, then take it."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(f"{int(dead.stdout)}\n")
    keeper = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    fcntl.flock(keeper, fcntl.LOCK_EX)
    notices: list[str] = []

    def release(line: str) -> None:  # the keeper is done once the waiting launcher said it waits
        notices.append(line)
        os.close(keeper)

    os.close(take_var(tmp_path, notice=release))
    assert len(notices) == 1 and f"pid {int(dead.stdout)}" in notices[0]


def test_a_lock_held_past_the_timeout_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("999999999\n")  # no such pid
    keeper = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    fcntl.flock(keeper, fcntl.LOCK_EX)
    try:
        with pytest.raises(OwnershipError, match="still holds") as refused:
            take_var(tmp_path, notice=lambda line: None, timeout=0.2)
        assert "\n" not in str(refused.value)
    finally:
        os.close(keeper)


def test_a_taken_port_is_named_with_its_holder_and_a_listener_is_known_by_its_pid() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        with pytest.raises(OwnershipError, match=rf"port {port} \(PORT\) is already taken by pid {os.getpid()} "):
            check_port("127.0.0.1", port, "PORT")
        assert listens(os.getpid(), port)
        other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        try:
            assert not listens(other.pid, port)  # alive, but not the one listening
        finally:
            assert other.stdin is not None
            other.stdin.close()
            other.wait(10)
    assert port_free("127.0.0.1", port) and not listens(os.getpid(), port)
    check_port("127.0.0.1", port, "PORT")
