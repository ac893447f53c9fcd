"""``payments-ops alerts check``: evaluate the alert rules once, print one line per rule.

The same evaluation the workers run each minute (``usecases.alerts.evaluate``), so a change it
finds is recorded and emailed to ``OPS_EMAIL`` as theirs would be (and not again by them). Fit
for cron where no worker runs, or to see every rule's value now. Always exits 0: a firing rule
is news, not a failure of the command. docs/alerts.md.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from usecases import alerts
from usecases.ports import AlertDeps


def check(deps: AlertDeps, as_json: bool, at: datetime | None = None) -> int:
    verdicts = alerts.evaluate(deps, at or datetime.now(UTC))
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "rule": v.rule.name,
                "state": "firing" if v.firing else "ok",
                "value": v.value,
                "threshold": v.rule.threshold,
                "op": v.rule.op,
                "change": v.change,
                "emailed": v.emailed,
            }
            for v in verdicts
        ]
        print(json.dumps(rows))
    else:
        for v in verdicts:
            told = f"  [{v.change}{', emailed' if v.emailed else ''}]" if v.change else ""
            print(v.line + told)
    if not deps.ops_email:
        print("payments-ops: OPS_EMAIL is not set: nothing was emailed", file=sys.stderr)
    return 0
