"""``payments-ops metrics [--window 1h|24h|7d|30d] [--json]``: the seed's success metrics (docs/success-metrics.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from adapters.success_metrics import MongoMetricSnapshots, MongoSuccessFacts
from domain.success_metrics import DEFAULT_WINDOW, TARGETS, WINDOWS
from usecases.success_metrics import CachedMeasure

LABELS = {
    "paymentSuccessRate": "payment success rate",
    "webhookDeliveryRate": "webhook delivery rate",
    "processingSeconds": "event processing time",
    "activationSeconds": "enrollment activation time",
    "refundRate": "refund rate",
    "conversionRate": "conversion",
}


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    found = commands.add_parser("metrics", parents=[common], help="the success metrics over a window")
    found.add_argument("--window", choices=list(WINDOWS), default=DEFAULT_WINDOW, help="default: %(default)s")


def _word(ok: object) -> str:
    return "on target" if ok is True else "OFF TARGET" if ok is False else "no data"


def _line(key: str, metric: dict[str, Any]) -> str:
    target = TARGETS.get(key)
    if "mean" in metric:
        if metric["mean"] is None:
            value = "—"
        else:
            value = f"mean {metric['mean']:.2f} s, p50 {metric['p50']:.2f} s, p95 {metric['p95']:.2f} s"
        goal = f"mean {target.describe()} s" if target else ""
        counts = f"{metric['count']} timed"
    else:
        value = "—" if metric["value"] is None else f"{metric['value'] * 100:.1f}%"
        goal = target.describe().replace(f"{target.bound:g}", f"{target.bound * 100:g}%") if target else "no target"
        counts = f"{metric['numerator']} of {metric['denominator']}"
    state = _word(metric["ok"]) if target else ""
    return f"{LABELS[key]:<28}{value:<42}{goal:<14}{state:<12}{counts}"


def text(result: dict[str, Any]) -> str:
    lines = [f"Success metrics, last {result['window']} ({result['start'][:16]} to {result['end'][:16]} UTC)"]
    lines += [_line(key, result[key]) for key in LABELS]
    for service in result["conversionRate"]["byService"]:
        name = service["serviceName"] or service["serviceId"] or "(no service)"
        share = f"{service['value'] * 100:.1f}%"
        lines.append(f"  conversion of {name}: {share} ({service['numerator']} of {service['denominator']})")
    for currency, row in result["revenue"].items():
        lines.append(
            f"revenue {currency} (minor units): gross {row['gross']}, refunded {row['refunded']}, "
            f"dispute lost {row['disputeLost']}, net {row['net']}"
        )
    if not result["revenue"]:
        lines.append("revenue: no payment was paid in this window")
    return "\n".join(lines)


def run(args: argparse.Namespace, db: Any) -> int:
    result = CachedMeasure(MongoSuccessFacts(db), MongoMetricSnapshots(db), "payments-ops").current(args.window)
    print(json.dumps(result, indent=2) if args.json else text(result))
    return 0
