"""Which code the benchmark measures: ``BENCH_CODE``, else the checkout this ``bench`` package is in.

So the same harness can measure an older commit checked out elsewhere (a ``git worktree``) for
"before" figures. Only the standard library is imported here: the code root must be first on
``sys.path`` before any project module is imported, and on every child's ``PYTHONPATH`` (the
venv's editable install would otherwise resolve ``python -m ingress`` to the main checkout).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The checkout holding this harness.
BENCH_ROOT = Path(__file__).resolve().parents[1]
#: Modules the benchmark runs in child processes (by path, or put on a child's ``PYTHONPATH``).
CHILD_DIR = Path(__file__).resolve().parent / "child"


def code_root() -> Path:
    return Path(os.environ.get("BENCH_CODE") or BENCH_ROOT).resolve()


def use_code_root() -> Path:
    """Make ``code_root()`` the first place project modules come from, here and in every child."""
    root = code_root()
    if not (root / "ingress").is_dir():
        raise SystemExit(f"BENCH_CODE={root} holds no ingress/: not a checkout of this project")
    sys.path.insert(0, str(root))
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *inherited])
    return root


def describe(root: Path) -> str:
    """The commit measured, and whether the working tree differs from it (others may be editing)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("log", "-1", "--format=%h %cs %s") or "not a git checkout"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{root} at {commit}" + (" (plus uncommitted changes)" if dirty else "")
