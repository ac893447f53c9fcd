"""The generated pages of docs/ are what ``docs/gen_docs.py`` writes from the code, so they cannot drift.

When one of these fails after a change to the settings, the payment states, the routes, the OpenAPI
schema or the indexes, run ``.venv/bin/python docs/gen_docs.py`` and commit the pages it rewrote.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from adapters.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "docs" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_configuration_md_is_what_the_settings_say(gen: ModuleType) -> None:
    """docs/configuration.md is regenerated from adapters/settings.py and compared whole."""
    expected = gen.render_configuration()
    assert (ROOT / "docs" / "configuration.md").read_text() == expected, (
        "docs/configuration.md is out of date: run .venv/bin/python docs/gen_docs.py"
    )


def test_every_settings_field_is_filled_by_a_documented_variable(gen: ModuleType) -> None:
    """Each ``Settings`` field has its variable, and the generator describes each variable once."""
    variables = gen.read_settings()
    filled = {v.field for v in variables}
    assert filled == {f.name for f in dataclasses.fields(Settings)}
    described = [name for entries in gen.MEANINGS.values() for name in entries]
    assert sorted(described) == sorted(v.name for v in variables)


def test_defaults_read_off_the_source_are_the_ones_load_settings_gives(gen: ModuleType) -> None:
    """The generator's reading of ``load_settings`` agrees with running it (so the page's defaults are right)."""
    settings = load_settings(gen.SAMPLE_ENV, dotenv=None)
    checked = 0
    for var in gen.read_settings():
        if var.name in gen.SAMPLE_ENV or var.default is None:
            continue
        assert getattr(settings, var.field) == var.default, var.name
        checked += 1
    assert checked >= 25


def test_generated_blocks_of_api_and_data_are_current(gen: ModuleType) -> None:
    """The state table, the routes and operations (from the app and /openapi.json) and the indexes are current."""
    assert gen.stale() == [], "run .venv/bin/python docs/gen_docs.py"


def test_every_route_of_the_app_is_in_api_md(gen: ModuleType) -> None:
    """No route is left out of the table: the generator refuses a route it cannot describe."""
    routes, schema = gen.served_api()
    page = (ROOT / "docs" / "api.md").read_text()
    for method, path in routes:
        shown = path.replace(":str}", "}")
        documented = [p for p in schema["paths"] if gen._shape(p) == gen._shape(shown)]
        assert f"| {method} | `{documented[0] if documented else shown}` |" in page, (method, path)
