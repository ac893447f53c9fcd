"""Post a signed, realistic Stripe test event to the running local stack (reads ``var/stack.json``).

    python -m devstack.send_event payment_intent.succeeded --seed
    python -m devstack.send_event payment_intent.payment_failed --payment pi_…
    python -m devstack.send_event --show

``--seed`` first stores a pending payment for a new intent, as create-intent would.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from payments_ops import events
from payments_ops.simulate import TYPES, pending_payment, post_event


def seed_payment(db: Any, intent_id: str) -> dict[str, str]:
    """Store a pending payment as create-intent would; return the intent metadata."""
    payment = pending_payment(intent_id)
    db.payments.insert_one(payment)
    return events.intent_metadata(payment)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.send_event", description=__doc__.splitlines()[0])
    parser.add_argument("type", nargs="?", choices=TYPES)
    parser.add_argument("--payment", help="the pi_… id of a stored payment")
    parser.add_argument("--seed", action="store_true", help="store a pending payment for a new intent first")
    parser.add_argument("--show", action="store_true", help="print the newest events, payments and enrollments")
    parser.add_argument("--stack", type=Path, default=Path("var/stack.json"))
    args = parser.parse_args(argv)
    if not args.stack.is_file():
        print(f"{args.stack} not found: start the stack with `make run` first", file=sys.stderr)
        return 2
    stack = json.loads(args.stack.read_text())
    client: MongoClient[dict[str, Any]]
    with MongoClient(stack["mongodb"], tz_aware=True) as client:
        db: Any = client[stack["mongodb_db"]]
        if args.show:
            for doc in db.stripe_events.find({}, {"payload": 0}).sort("receivedAt", -1).limit(5):
                print(json.dumps(doc, default=str))
            for doc in db.payments.find({}, {"statusHistory": 0}).sort("updatedAt", -1).limit(5):
                print(json.dumps(doc, default=str))
            for doc in db.enrollments.find({}).sort("updatedAt", -1).limit(5):
                print(json.dumps(doc, default=str))
            return 0
        if args.type is None or not (args.payment or args.seed):
            parser.error("give an event type and --payment pi_… or --seed")
        intent_id = args.payment or events.new_id("pi")
        if args.seed:
            payment = pending_payment(intent_id)
            db.payments.insert_one(payment)
        else:
            payment = db.payments.find_one({"paymentId": intent_id})
            if payment is None:
                print(f"no payment {intent_id}", file=sys.stderr)
                return 1
    intent = events.payment_intent(
        args.type, intent_id, payment["amount"], payment["currency"], events.intent_metadata(payment)
    )
    status, body = post_event(stack["ingress"], stack["webhook_secret"], events.event(args.type, intent))
    print(f"{status} {body}  (payment {intent_id})")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
