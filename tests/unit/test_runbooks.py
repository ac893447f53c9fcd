"""docs/runbooks.md has a section for every alert rule and every common issue, each with its four parts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.alerts import RULES

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks.md"

#: The alert rules' names (Prometheus ``alert:`` and the workers' evaluator, one table); each
#: ``runbook_url`` is ``docs/runbooks.md#<name lower-cased>``.
ALERTS = [rule.name for rule in RULES]
COMMON_ISSUES = [
    "Intent creation fails",
    "Webhook not received",
    "Enrollment not activated after payment",
    "3-D Secure not triggering",
    "Duplicate enrollments",
]
PARTS = ["What it means.", "How to confirm it.", "How to fix it.", "How to verify it is fixed."]
#: A way to confirm: a ``payments-ops`` command or a dashboard page.
CONFIRM = re.compile(r"`payments-ops [a-z]|`/ops(/metrics|/payments/\{paymentId\})?`")


def sections() -> dict[str, str]:
    """Each heading's text (any level) → the text up to the next heading."""
    found: dict[str, str] = {}
    parts = re.split(r"^#{1,6} (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        assert heading.strip() not in found, f"heading {heading!r} twice"
        found[heading.strip()] = body
    return found


@pytest.mark.parametrize("name", ALERTS + COMMON_ISSUES)
def test_each_section_has_its_four_parts(name: str) -> None:
    body = sections().get(name)
    assert body is not None, f"docs/runbooks.md has no heading {name!r}"
    places = []
    for part in PARTS:
        match = re.search(rf"^\*\*{re.escape(part)}\*\* +\S", body, flags=re.MULTILINE)
        assert match, f"{name}: no **{part}** paragraph"
        places.append(match.start())
    assert places == sorted(places), f"{name}: parts out of order"
    confirm = body[places[1] : places[2]]
    assert CONFIRM.search(confirm), f"{name}: confirming names no payments-ops command or dashboard page"


def test_the_anchors_are_the_lower_cased_alert_names() -> None:
    """GitHub's anchor of a heading made of letters only is the heading lower-cased."""
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in ALERTS)
    assert {name.lower() for name in ALERTS} <= {h.lower() for h in sections()}


def test_the_docs_index_links_the_runbooks() -> None:
    assert "(runbooks.md)" in (RUNBOOKS.parent / "README.md").read_text()
