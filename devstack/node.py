"""The TypeScript client (``clients/payments-api``): its npm install and its build, for ``make run`` and the tests.

``npm ci`` runs only when ``node_modules`` is missing or ``package-lock.json`` changed since it last
ran (its digest is kept in ``node_modules``); ``tsc`` only when a source is newer than the build.
Both hold a lock on the lock file, so a ``make run`` and a test run never install over each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The client's package, and the checkout page's folder.
CLIENT = ROOT / "clients" / "payments-api"
CHECKOUT = ROOT / "clients" / "checkout"
#: ``npm ci`` leaves the digest of the lock file it installed here.
_STAMP = Path("node_modules") / ".package-lock.sha256"


class NodeError(Exception):
    """Node or npm is missing, or one of their commands failed; the message says which, with its output."""


def tool(name: str) -> str:
    """``node`` or ``npm`` from PATH."""
    found = shutil.which(name)
    if found is None:
        raise NodeError(f"{name} is not on PATH (Node 20 or newer with npm builds the TypeScript client)")
    return found


@contextlib.contextmanager
def _locked(package: Path) -> Iterator[None]:
    with open(package / "package-lock.json", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_tool(argv: list[str], cwd: Path = CLIENT, timeout: float = 300) -> None:
    """Run a Node command; ``NodeError`` with its output when it fails or takes longer than ``timeout``."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise NodeError(f"{' '.join(argv)} took longer than {timeout:.0f} s in {cwd}") from None
    if done.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed in {cwd} (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def install(package: Path = CLIENT) -> bool:
    """``npm ci`` in ``package`` unless its ``node_modules`` already holds its lock file's tree; True if it ran."""
    with _locked(package):
        digest = hashlib.sha256((package / "package-lock.json").read_bytes()).hexdigest()
        stamp = package / _STAMP
        if stamp.is_file() and stamp.read_text() == digest:
            return False
        run_tool([tool("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"], package, timeout=600)
        stamp.write_text(digest)
        return True


def bin_path(name: str, package: Path = CLIENT) -> str:
    """An installed package's command (``tsc``, ``openapi-typescript``)."""
    return str(package / "node_modules" / ".bin" / name)


def build(package: Path = CLIENT) -> Path:
    """Install if needed, then compile ``src`` to ES modules in ``dist`` unless the build is current; ``dist``."""
    install(package)
    dist = package / "dist"
    inputs = [*(package / "src").rglob("*.ts"), package / "tsconfig.json", package / "tsconfig.build.json"]
    outputs = list(dist.rglob("*.js"))
    with _locked(package):
        if not outputs or max(p.stat().st_mtime for p in inputs) > min(p.stat().st_mtime for p in outputs):
            shutil.rmtree(dist, ignore_errors=True)
            run_tool([tool("node"), bin_path("tsc", package), "-p", "tsconfig.build.json"], package, timeout=300)
    return dist


def typecheck(package: Path = CLIENT) -> None:
    """``tsc --noEmit`` over the package (installed first if needed)."""
    install(package)
    run_tool([tool("node"), bin_path("tsc", package), "--noEmit", "-p", "tsconfig.json"], package, timeout=300)
