"""``payments-ops`` against a running stack (issue 9): it finds the stack, and its exit codes mean what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.stack import Stack
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


def ops(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command as an operator would: no service variables, so it looks for ./var/stack.json."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "payments_ops", *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_it_finds_the_local_stack_and_simulates_an_event(stack: Stack, stack_db: Any, tmp_path: Path) -> None:
    """With var/stack.json beside it: queues and failures answer 0, simulate posts a signed event that is processed."""
    (tmp_path / "var").symlink_to(stack.var)
    queues = ops(tmp_path, "queues", "--json")
    assert queues.returncode == 0, queues.stderr
    assert set(json.loads(queues.stdout)) == {"emails", "refunds", "stripe-events"}
    assert ops(tmp_path, "failures", "list").returncode == 0
    simulated = ops(tmp_path, "simulate", "payment_intent.succeeded", "--json")
    assert simulated.returncode == 0, simulated.stderr
    intent_id = json.loads(simulated.stdout)["paymentId"]
    wait_for(lambda: (stack_db.payments.find_one({"paymentId": intent_id}) or {}).get("status") == "completed", 20)
    again = ops(tmp_path, "simulate", "payment_intent.succeeded", "--payment", intent_id)
    assert again.returncode == 0 and intent_id in again.stdout


def test_exit_codes(stack: Stack, tmp_path: Path) -> None:
    """2 without any configuration or for bad usage, 1 for what is not there, 0 for a dry run."""
    nowhere = ops(tmp_path, "queues")
    assert nowhere.returncode == 2 and "no configuration" in nowhere.stderr
    (tmp_path / "var").symlink_to(stack.var)
    assert ops(tmp_path, "no-such-command").returncode == 2
    assert ops(tmp_path, "failures", "show", "0" * 24).returncode == 1
    assert ops(tmp_path, "simulate", "payment_intent.succeeded", "--payment", "pi_unknown").returncode == 1
    assert ops(tmp_path, "failures", "replay").returncode == 0  # a dry run
    assert ops(tmp_path, "stuck", "list").returncode == 0
