"""clients/payments-api, the MERN app's TypeScript client: its types are the served schema's, and it type-checks.

The schema the app serves is dumped again (``clients/payments-api/generate.py``: the app built by
``create_app`` on an in-memory database, asked for ``/openapi.json``), turned into TypeScript by
the pinned openapi-typescript, and both must equal the committed ``openapi.json`` and
``src/schema.d.ts``; then ``tsc --noEmit`` checks the client against them, so a field the client
uses that the schema no longer describes fails here. ``npm ci`` runs first only when
``node_modules`` is missing or ``package-lock.json`` changed (``devstack.node.install``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from adapters.serialize import VIEWS
from devstack import node
from ingress.openapi import SCHEMA

ROOT = Path(__file__).resolve().parents[2]

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="Node 20+ with npm is needed to check the TypeScript client",
)


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("payments_api_generate", node.CLIENT / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_node
@pytest.mark.timeout(900)  # a first npm ci downloads the pinned packages
def test_the_generated_types_are_the_served_schemas_and_the_client_type_checks() -> None:
    """Committed openapi.json and src/schema.d.ts equal what the app's schema generates; tsc --noEmit passes."""
    gen = generator()
    assert gen.stale() == [], (
        "the client's types are out of date: run .venv/bin/python clients/payments-api/generate.py"
    )
    node.typecheck()


@needs_node
def test_the_client_pins_its_tools_and_installs_from_its_lock_file() -> None:
    """Exact devDependency versions, and a lock file that holds those very versions."""
    package = json.loads((node.CLIENT / "package.json").read_text())
    lock = json.loads((node.CLIENT / "package-lock.json").read_text())
    assert set(package["devDependencies"]) == {"openapi-typescript", "typescript"}
    for name, version in package["devDependencies"].items():
        assert version[0].isdigit(), f"{name} is not pinned: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert not package.get("dependencies"), "the client runs on fetch alone: no runtime dependency"
    node.install()
    assert (node.CLIENT / "node_modules" / ".bin" / "tsc").exists()


def _schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = SCHEMA["components"]["schemas"][name]
    return found


def test_the_schema_describes_every_field_a_customer_or_specialist_is_shown() -> None:
    """Each field of the customer's and the specialist's view of a payment (adapters/serialize.py's
    allow-lists), and each key of its refunds, status changes and dispute, is in the served schema."""
    payment = _schema("Payment")["properties"]
    shown = {field for view in VIEWS.values() for field in view} | {"id"}
    assert shown - set(payment) == set()
    items = {"refunds": "Refund", "statusHistory": "StatusChange", "dispute": "Dispute"}
    for view in VIEWS.values():
        for field, keys in view.items():
            if keys is not None:
                assert keys - set(_schema(items[field])["properties"]) == set(), field


def test_the_statistics_rows_name_every_figure_the_aggregation_gives() -> None:
    from adapters.statistics import FIGURES

    for row in ("CurrencyFigures", "MonthFigures", "ServiceFigures"):
        assert set(_schema(row)["properties"]) >= {*FIGURES, "net", "currency"}, row
