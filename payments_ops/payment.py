"""``payments-ops payment ID``: one payment's story from a shell (the summary, the timeline, the
diagnosis with fixes); ``--json`` prints the ops API's shape (docs/api.md#ops-api)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from adapters.story import story_json
from usecases.story import StoryDeps, is_key, story


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    found = commands.add_parser("payment", parents=[common], help="a payment's story: timeline and diagnosis")
    found.add_argument("payment_id", help="its pi_… id or its 24-hex _id")


def _when(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")


def human(body: Mapping[str, Any]) -> str:
    """The story for people: summary, Stripe's view, the timeline, the diagnosis with fixes."""
    p = body["payment"]
    enrollment = (body["enrollment"] or {}).get("status", "none")
    lines = [
        f"payment {p.get('paymentId') or '-'}  (record {p['id']})",
        f"  status {p.get('status')}  amount {p.get('amount')} {p.get('currency')}"
        f"  refunded {p.get('amountRefunded') or 0}",
        f"  customer {p.get('customerEmail') or '-'} ({p.get('customerId')})  service {p.get('serviceName') or '-'}",
        f"  enrollment {enrollment}  activated {_when(p.get('activatedAt')) or 'no'}",
    ]
    stripe = body["stripe"]
    if stripe is None:
        lines.append(f"  Stripe: not shown: {body['stripeError']}")
    else:
        intent, charge = stripe["intent"], stripe.get("charge") or {}
        refunded = charge.get("amount_refunded", 0)
        lines.append(f"  Stripe: {intent.get('status')}  {intent.get('amount')} {str(intent.get('currency')).upper()}"
                     f"  charge {charge.get('id', '-')}  refunded {refunded}")  # fmt: skip
    lines += ["", "Timeline (UTC)"]
    lines += [f"  {_when(t['at'])}  {t['source']:<10}  {t['what']}" for t in body["timeline"]]
    lines += ["", "Diagnosis"]
    if not body["diagnosis"]:
        lines.append("  nothing wrong found")
    for finding in body["diagnosis"]:
        lines += [f"  {finding['code']}: {finding['message']}", f"    fix: {finding['fix']}"]
    return "\n".join(lines)


def run(args: argparse.Namespace, deps: StoryDeps) -> int:
    key = args.payment_id.strip()
    if not is_key(key):
        print(f"payments-ops: {key!r} is neither a pi_… id nor a 24-hex payment id", file=sys.stderr)
        return 2
    found = story(key, deps)
    if found is None:
        print(f"payments-ops: no payment {key}", file=sys.stderr)
        return 1
    body = story_json(found)
    print(json.dumps(body) if args.json else human(body))
    return 0
