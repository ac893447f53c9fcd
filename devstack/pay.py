"""Pay a PaymentIntent with a test card through the local Stripe, as the frontend's Stripe.js would.

    python -m devstack.pay pi_… [--card pm_card_visa]

localstripe takes no ``payment_method`` on confirm, so the card is attached with an update
first, then the intent is confirmed. A declined card (``pm_card_chargeCustomerFail`` there,
``pm_card_chargeDeclined`` on Stripe's test mode) ends ``requires_payment_method``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import stripe

from payments_ops.config import LOCAL_STRIPE_KEY


def pay(api_base: str, intent_id: str, card: str = "pm_card_visa", api_key: str = LOCAL_STRIPE_KEY) -> str:
    """Attach ``card`` and confirm; return the intent's status afterwards."""
    client = stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=0)
    intents = client.v1.payment_intents
    intents.update(intent_id, params={"payment_method": card})
    # A decline raises CardError; the intent then says so, and Stripe sends payment_intent.payment_failed.
    with contextlib.suppress(stripe.CardError):
        intents.confirm(intent_id)
    return str(intents.retrieve(intent_id).status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.pay", description=__doc__.splitlines()[0])
    parser.add_argument("intent")
    parser.add_argument("--card", default="pm_card_visa")
    parser.add_argument("--stack", type=Path, default=Path("var/stack.json"))
    args = parser.parse_args(argv)
    stack = json.loads(args.stack.read_text())
    print(pay(stack["stripe_api"], args.intent, args.card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
