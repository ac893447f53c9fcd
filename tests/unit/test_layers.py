"""The flow runs one way: ingress → queue → actor → use case → rules and adapters, never back.

The layers: docs/architecture.md#layers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What each package may import besides the standard library and itself.
ALLOWED: dict[str, set[str]] = {
    # Pure rules: no framework, no driver, no adapter, no use case.
    "domain": set(),
    # Use cases call ports; the adapters behind them are handed in by a bootstrap.
    "usecases": {"domain"},
    "adapters": {
        "domain",
        "usecases",
        "bson",
        "pymongo",
        "redis",
        "dramatiq",
        "stripe",
        "jinja2",
        "tenacity",
        "prometheus_client",
        "orjson",
    },
    "ingress": {
        "domain",
        "usecases",
        "adapters",
        "starlette",
        "anyio",
        "uvicorn",
        "jwt",
        "bson",
        "pymongo",
        "redis",
        "stripe",
        "dramatiq",
        "orjson",
    },
}
#: Packages that must never import the worker package (everything but ``workers/`` itself).
NOT_WORKERS = ("domain", "usecases", "adapters", "ingress", "devstack", "bench", "payments_ops")


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of ``package`` imports (relative imports resolve to the package)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(package if node.level else str(node.module).split(".")[0])
        found[str(path.relative_to(ROOT))] = names - {"__future__", package}
    return found


@pytest.mark.parametrize("package", NOT_WORKERS)
def test_nothing_outside_workers_imports_workers(package: str) -> None:
    """Queue names, messages and the broker live in adapters.queue; only the worker package imports workers."""
    offenders = {path for path, names in imports_of(package).items() if "workers" in names}
    assert not offenders, f"{sorted(offenders)} import workers"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(package: str) -> None:
    """domain imports only the standard library; usecases adds domain; adapters and ingress name their libraries."""
    allowed = ALLOWED[package] | set(sys.stdlib_module_names)
    offenders = {f"{path}: {sorted(names - allowed)}" for path, names in imports_of(package).items() if names - allowed}
    assert not offenders, f"imports across the layers: {sorted(offenders)}"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule module importing pymongo or workers is caught, so the tests above can fail."""
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "rules.py").write_text("import pymongo\nfrom workers import actors\nfrom . import money\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imports_of("domain") == {"domain/rules.py": {"pymongo", "workers"}}
