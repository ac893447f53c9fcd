"""deploy/prometheus/alerts.yml: valid for promtool, each rule unit-tested, the same rules as the workers'.

``promtool`` comes from Debian's ``prometheus`` package (deploy/prometheus/install_promtool.sh,
run by ``make test``; installed here when missing and root).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.alerts import BY_NAME, RULES

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS, TESTS = PROMETHEUS / "alerts.yml", PROMETHEUS / "alerts_test.yml"
INSTALL = PROMETHEUS / "install_promtool.sh"

#: ``… > 5`` or ``… < 0.98`` at the end of an expression: its comparison and threshold.
_COMPARISON = re.compile(r"([<>]=?)\s*([0-9.]+)\s*$")


@pytest.fixture(scope="module")
def promtool() -> str:
    if not shutil.which("promtool"):
        if os.geteuid() != 0:
            pytest.skip(f"promtool is missing; install it as root with {INSTALL}")
        subprocess.run(["bash", str(INSTALL)], check=True, timeout=900)
    found = shutil.which("promtool")
    assert found, "promtool still missing after install_promtool.sh"
    return found


def shipped_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def duration(span: timedelta) -> str:
    """A window as Prometheus writes it: ``5m``, ``1h``, ``24h``."""
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def test_promtool_checks_the_rules(promtool: str) -> None:
    """``promtool check rules``: the file parses and every expression is valid PromQL."""
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    """``promtool test rules``: each rule quiet on healthy series and firing on bad ones."""
    result = subprocess.run([promtool, "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_unit_tested_firing_and_not_firing() -> None:
    """alerts_test.yml evaluates each rule at least once with no alert and once with one."""
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for name in BY_NAME:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] == [] for case in mine), f"{name}: no case where it stays quiet"
        assert any(case["exp_alerts"] for case in mine), f"{name}: no case where it fires"


def test_prometheus_and_the_workers_apply_the_same_rules() -> None:
    """Same names, comparisons, thresholds, windows, severities and summaries as domain/alerts.py."""
    shipped = shipped_rules()
    assert list(shipped) == [rule.name for rule in RULES]
    for rule in RULES:
        found = shipped[rule.name]
        comparison = _COMPARISON.search(found["expr"])
        assert comparison, f"{rule.name}: its expression does not end in a comparison"
        assert (comparison.group(1), float(comparison.group(2))) == (rule.op, rule.threshold), rule.name
        if rule.window is not None:
            span = duration(rule.window)
            assert f"[{span}]" in found["expr"] or f'window="{span}"' in found["expr"], rule.name
        assert found["labels"]["severity"] == rule.severity, rule.name
        assert found["annotations"]["summary"] == rule.summary, rule.name


def test_each_rule_links_its_runbook_section() -> None:
    """Every rule's runbook_url is docs/runbooks.md's section named after the rule."""
    for name, rule in shipped_rules().items():
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
