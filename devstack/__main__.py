"""``make run``: the whole local stack in the foreground, with a short walkthrough.

Ctrl-C or SIGTERM stops every child; a child that dies on its own is restarted with a back-off
(``devstack.supervisor``), and the stack goes on. One launcher per ``var/`` (``devstack.ownership``):
a second one refuses, or waits for what a killed one left; its children die with it (the keeper).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from adapters.settings import ConfigError, read_dotenv
from devstack.ownership import OwnershipError, take_var
from devstack.procs import hold_until_children_stop
from devstack.stack import Stack, StackError
from devstack.supervisor import Supervisor

WALKTHROUGH = """
The payments stack is up (details in var/stack.json, logs in var/logs/):
  ingress   {ingress}
  redis     {redis}
  mongodb   {mongodb} (database {mongodb_db})
  stripe    {stripe_api}
  smtp      {smtp} (mails written to {mail_dir})

Walkthrough (a demo customer, specialist and course are seeded; tokens are in var/stack.json):
  export CUSTOMER_JWT={demo[customer_jwt]}
  1. Create an intent for the demo course (the price comes from the database):
       curl -s -X POST {ingress}/api/payments/create-intent \\
         -H "Authorization: Bearer $CUSTOMER_JWT" -H "Content-Type: application/json" \\
         -d '{{"serviceId": "{demo[service_id]}", "serviceType": "course"}}'
  2. Pay it with a test card through the local Stripe (its signed webhook comes back here):
       .venv/bin/python -m devstack.pay pi_…            (a decline: --card pm_card_chargeCustomerFail)
  3. See the payment, the enrollment and the two emails:
       curl -s {ingress}/api/payments/pi_… -H "Authorization: Bearer $CUSTOMER_JWT"
       .venv/bin/python -m devstack.send_event --show
       ls {mail_dir}
  Or post a signed test event yourself:
       .venv/bin/python -m devstack.send_event payment_intent.succeeded --seed
  Health:  curl -s {ingress}/api/webhooks/health
{checkout_block}
Ctrl-C stops everything.
"""

CHECKOUT = """
Checkout page (the frontend's stand-in, on an origin of its own): {url}/
  Sign in as the demo customer, pick a service and pay: 4242 4242 4242 4242 pays (any future date,
  any CVC), 4000 0025 0000 3155 asks for 3-D Secure, 4000 0000 0000 9995 is declined. Then the
  payment history (filter, refund, CSV download); as the demo specialist, the earnings chart.
  Every call it makes is clients/payments-api's (README.md#the-checkout-page).
"""
#: Where ``make run`` serves the checkout page unless ``CHECKOUT_PORT`` says otherwise (Vite's port).
CHECKOUT_PORT = 5173


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def main() -> int:
    try:
        environ = {**read_dotenv(Path(".env")), **os.environ}
        port = int(environ.get("PORT") or 5001)
        if environ.get("APP_ENV") != "production":  # Stack refuses that; no var/ for it
            # Before anything in var/ is written; held until this launcher's children are all gone.
            hold_until_children_stop(take_var(Path("var"), notice=lambda line: print(line, flush=True)))
        checkout_port = int(environ.get("CHECKOUT_PORT") or CHECKOUT_PORT)
        stack = Stack(Path("var"), environ, ingress_port=port, checkout_port=checkout_port)
        stack.check_ingress_port()  # before any part starts: a taken port would answer our health check
    except (ConfigError, StackError, OwnershipError, ValueError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        print("starting the local stack…", flush=True)
        info = stack.start()
        page = CHECKOUT.format(url=info["checkout"]) if info["checkout"] else ""
        notices = "".join(f"\nNote: {notice}\n" for notice in stack.notices)
        print(WALKTHROUGH.format(**info, checkout_block=page + notices), flush=True)
        supervisor = Supervisor(stack)
        while True:
            supervisor.tick()
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        print("\nstopping…", flush=True)
        return 0
    except (StackError, RuntimeError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
