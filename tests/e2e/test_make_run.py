"""``make run``'s launcher: the stack comes up, takes a signed test event, and SIGTERM leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import stat
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from devstack import send_event
from devstack.procs import Child, free_port, port_open, python_module
from tests.support import wait_for


def leader(directory: Path, module: str, parent: int) -> int | None:
    """The pid of the launcher's child running ``python -m module`` (not the processes it forked)."""
    for pid in processes_under(directory):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and argv[1:3] == [b"-m", module.encode()]:
            return pid
    return None


def restarted(directory: Path, module: str, parent: int, old: int) -> bool:
    return leader(directory, module, parent) not in (None, old)


def healthy(ingress: str) -> bool:
    try:
        with urllib.request.urlopen(f"{ingress}/api/webhooks/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def processes_under(directory: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(directory):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_make_run_brings_the_stack_up_and_sigterm_stops_every_child(tmp_path: Path) -> None:
    """The launcher writes var/stack.json, a signed event is processed, SIGTERM stops all children."""
    env = {"PORT": str(free_port()), "REDIS_URL": "", "MONGODB_URI": "", "SMTP_URL": "", "STRIPE_SECRET_KEY": ""}
    env["CHECKOUT_PORT"] = str(free_port())
    launcher = Child("launcher", python_module("devstack"), tmp_path / "logs", env=env, cwd=tmp_path).start()
    try:
        stack_file = tmp_path / "var" / "stack.json"
        launcher.wait_until(stack_file.is_file, 60, "var/stack.json")
        info = json.loads(stack_file.read_text())
        assert set(info) >= {"ingress", "redis", "mongodb", "mongodb_db", "stripe_api", "webhook_secret", "smtp"}
        assert info["webhook_secret"].startswith("whsec_") and info["ingress"].endswith(env["PORT"])
        # The walkthrough is printed just after stack.json is written; it points at the checkout page.
        launcher.wait_until(lambda: "The payments stack is up" in launcher.log_tail(60), 20, "the walkthrough")
        page = f"http://localhost:{env['CHECKOUT_PORT']}"
        assert info["checkout"] == page and "Checkout page (the frontend's stand-in" in launcher.log_tail(60)
        with urllib.request.urlopen(f"{page}/config.json", timeout=5) as answer:
            config = json.loads(answer.read())
        assert config["apiBaseUrl"] == info["ingress"] and config["stripe"]["jsUrl"].startswith(info["stripe_api"])
        assert [user["role"] for user in config["users"]] == ["customer", "specialist"]
        for private in (stack_file, tmp_path / "var" / "secrets.json"):  # secrets and a 30-day admin JWT
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private

        assert send_event.main(["payment_intent.succeeded", "--seed", "--stack", str(stack_file)]) == 0
        client: MongoClient[dict[str, Any]] = MongoClient(info["mongodb"])
        try:
            events = client[info["mongodb_db"]].stripe_events
            wait_for(lambda: events.find_one({"status": "processed"}), what="the test event processed")
        finally:
            client.close()
        assert len(processes_under(tmp_path / "var")) >= 5

        # A part that dies on its own comes back on its own port; the stack goes on.
        for module in ("workers", "ingress"):
            victim = leader(tmp_path / "var", module, launcher.pid)
            assert victim is not None, module
            os.kill(victim, signal.SIGKILL)
            back = partial(restarted, tmp_path / "var", module, launcher.pid, victim)
            wait_for(back, 60, f"{module} back")
        wait_for(lambda: healthy(info["ingress"]), 30, "the ingress answering again")
        assert launcher.alive()
        assert send_event.main(["payment_intent.succeeded", "--seed", "--stack", str(stack_file)]) == 0
        client = MongoClient(info["mongodb"])
        try:
            processed = client[info["mongodb_db"]].stripe_events
            wait_for(lambda: processed.count_documents({"status": "processed"}) == 2, 60, "the second event")
        finally:
            client.close()
        assert "workers" not in launcher.log_tail(200) or "worker restarted" in launcher.log_tail(200)
        assert "ingress restarted" in launcher.log_tail(200)
    finally:
        launcher.signal(signal.SIGTERM)
        code = launcher.proc.wait(30) if launcher.proc else None
        launcher.stop()
    assert code == 0
    assert processes_under(tmp_path / "var") == []
    ports = [
        int(info[k].rsplit(":", 1)[1].split("/")[0]) for k in ("ingress", "redis", "stripe_api", "smtp", "checkout")
    ]
    assert not any(port_open("127.0.0.1", p) for p in ports)
