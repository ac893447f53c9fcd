"""Serve localstripe (a local Stripe stand-in) on one address with its own state file.

``python -m devstack.localstripe_server --port N [--host 127.0.0.1] --state PATH [--from-scratch]``

localstripe's own CLI binds every interface (``::``) and pickles its state to the fixed file
``/tmp/localstripe.pickle``, so two stacks on one machine (or a test run next to ``make run``) would
share and overwrite each other's data. Here we import its aiohttp ``app`` and serve it ourselves on
``--host`` only, and point its ``Store`` at ``--state``.

That leans on localstripe internals (pinned in pyproject.toml), checked before serving by
``check_localstripe_internals``.

Not persisted (localstripe keeps them in memory): registered webhooks (``POST /_config/webhooks/{id}``)
must be registered again after a restart. ``GET /_config/webhooks`` (added here) lists them, each
secret as its SHA-256 only, as ``payments-ops doctor`` checks them.

What a browser's checkout needs and localstripe 1.15 lacks is added as Stripe does it (README.md's
checkout page): its Stripe.js (``/js.stripe.com/v3/``) gets a ``confirmCardPayment`` that sends the
card element's card (``localstripe_card.js``), the API confirms an intent with the publishable
key, the client secret and ``payment_method_data`` (``confirm_from_browser``), and Stripe's
declining test cards (``4000 0000 0000 9995`` and the others of ``DECLINED_CARDS``) are declined
when charged, with Stripe's code, decline code and message (``decline_test_cards``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import logging
import os
import pickle
import re
import signal
import sys
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web
from localstripe import resources, webhooks
from localstripe.errors import UserError, json_response
from localstripe.resources import Store, store

# localstripe registers plain (non-async) handlers, which aiohttp deprecates at import time; the
# warning is about localstripe's code, not ours, and would only clutter the log (or, under pytest's
# "error" filter, break an importing test).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Bare functions are deprecated", category=DeprecationWarning)
    from localstripe import server
    from localstripe.server import app

log = logging.getLogger("devstack.localstripe")

#: The localstripe release this module was written against.
LOCALSTRIPE_PINNED = "1.15.10"


def check_localstripe_internals() -> None:
    """Raise ``RuntimeError`` naming what is missing if the localstripe internals used here changed."""

    def changed(what: str) -> RuntimeError:
        return RuntimeError(
            f"localstripe internals changed: {what}; localstripe_server.py was written for localstripe"
            f" {LOCALSTRIPE_PINNED} (pinned in pyproject.toml; installed: {version('localstripe')})"
        )

    for owner, name in [
        (resources, "Store"),
        (resources, "store"),
        (resources, "Refund"),
        (resources, "UserError"),
        (resources, "try_convert_to_int"),
        (resources.PaymentIntent, "_update"),
        (resources.PaymentIntent, "_confirm"),
        (resources.PaymentIntent, "_report_failure"),
        (resources.PaymentIntent, "_api_retrieve"),
        (resources.PaymentMethod, "_charging_is_declined"),
        (resources.Charge, "_set_auth_failure"),
        (resources.Charge, "_raise_failure"),
        (server, "app"),
        (server, "error_middleware"),
        (server, "get_post_data"),
        (webhooks, "_webhooks"),
    ]:
        if not hasattr(owner, name):
            raise changed(f"{owner.__name__} has no {name}")
    if not STRIPE_JS.is_file():
        raise changed(f"its Stripe.js ({STRIPE_JS.name}) is missing")
    if "confirmCardPayment" not in STRIPE_JS.read_text() or "function openModal(" not in STRIPE_JS.read_text():
        raise changed(f"{STRIPE_JS.name} has no confirmCardPayment or openModal")
    if server.error_middleware not in server.app.middlewares:
        raise changed("its app no longer runs error_middleware")
    for name in ("try_load_from_disk", "dump_to_disk", "__setitem__", "__delitem__"):
        if name not in vars(resources.Store):
            raise changed(f"Store has no {name}")
    # The state file is only written if every change to the store goes through dump_to_disk.
    for name in ("__setitem__", "__delitem__"):
        if "self.dump_to_disk()" not in inspect.getsource(vars(resources.Store)[name]):
            raise changed(f"Store.{name} no longer calls dump_to_disk")
    if not isinstance(resources.store, resources.Store):
        raise changed("localstripe.resources.store is no longer a Store")
    if not isinstance(server.app, web.Application):
        raise changed("localstripe.server.app is no longer an aiohttp Application")


def use_state_file(path: Path) -> None:
    """Make localstripe's one ``Store`` read and write ``path`` instead of /tmp/localstripe.pickle.

    Patched on the class (not the instance): the store pickles itself, and functions set on the
    instance would land in its ``__dict__`` and so in the pickle.
    """
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)

    def try_load_from_disk(self: Store) -> None:
        try:
            with open(path, "rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        self.clear()
        self.update(old)  # dict.update does not call __setitem__, so no dump while loading

    def dump_to_disk(self: Store) -> None:
        # localstripe dumps after every store change; a crash mid-write must never leave a truncated
        # pickle, so write a temp file in the same directory and rename it over the old one.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    Store.try_load_from_disk = try_load_from_disk
    Store.dump_to_disk = dump_to_disk


async def serve(host: str, port: int) -> None:
    """Serve the app until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # A short shutdown_timeout: nothing in flight here is worth waiting 60 s (aiohttp's default) for.
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access"), shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("localstripe listening on http://%s:%d", host, port)
        await stop.wait()
        log.info("localstripe stopping")
    finally:
        await runner.cleanup()


#: The refund reasons Stripe takes (localstripe 1.15 refuses the parameter altogether).
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


def accept_refund_reason() -> None:
    """Let ``POST /v1/refunds`` take ``reason`` as Stripe does, and keep it on the refund.

    Real Stripe takes it; the project sends it; localstripe 1.15 answers 400 "Unexpected reason".
    A reason Stripe would refuse is refused here too.
    """
    original = resources.Refund.__init__

    def __init__(self: Any, *args: Any, reason: Any = None, **kwargs: Any) -> None:
        if reason is not None and reason not in REFUND_REASONS:
            raise resources.UserError(400, "Invalid reason: must be one of " + ", ".join(sorted(REFUND_REASONS)))
        original(self, *args, **kwargs)
        self.reason = reason

    resources.Refund.__init__ = __init__


def integer_intent_amounts() -> None:
    """Store an updated PaymentIntent's ``amount`` as the integer Stripe keeps, not the form string.

    localstripe 1.15 converts the amount when an intent is created but stores an update's as sent
    (``"300"``), and then sends it so in events; the worker refuses an amount that is not an integer.
    """
    original = resources.PaymentIntent._update

    def _update(self: Any, **data: Any) -> None:
        if "amount" in data:
            data["amount"] = resources.try_convert_to_int(data["amount"])
        original(self, **data)

    resources.PaymentIntent._update = _update


#: localstripe's Stripe.js, and what this stand-in adds to it (a ``confirmCardPayment`` that pays with the card).
STRIPE_JS = Path(server.__file__).with_name("localstripe-v3.js")
CARD_JS = Path(__file__).with_name("localstripe_card.js")


class Decline(NamedTuple):
    code: str
    decline_code: str
    message: str


#: Stripe's test cards declined when charged (docs.stripe.com/testing#declined-payments); localstripe
#: declines most of them only when attached to a customer, and charges them otherwise.
DECLINED_CARDS = {
    "4000000000000002": Decline("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": Decline("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": Decline("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": Decline("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": Decline("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
}


def _decline_of(method: Any) -> Decline | None:
    number = getattr(method, "_card_number", None) if getattr(method, "type", "card") == "card" else None
    return DECLINED_CARDS.get(number) if isinstance(number, str) else None


def decline_test_cards() -> None:
    """Decline ``DECLINED_CARDS`` when charged, with Stripe's code, decline code and message.

    The charge fails as localstripe fails its own declining card (``4000 0000 0000 0341``): the
    confirm is answered 402, the intent goes back to ``requires_payment_method`` with
    ``last_payment_error``, and ``payment_intent.payment_failed`` is sent.
    """
    declined = resources.PaymentMethod._charging_is_declined
    fail = resources.Charge._set_auth_failure

    def _charging_is_declined(self: Any) -> bool:
        return bool(declined(self)) or _decline_of(self) is not None

    def _set_auth_failure(self: Any) -> None:
        fail(self)
        decline = _decline_of(resources.PaymentMethod._api_retrieve(self.payment_method))
        if decline is not None:
            self.failure_code, self.failure_message = decline.code, decline.message
            self._decline_code = decline.decline_code

    def _raise_failure(self: Any) -> None:
        contents = {"code": self.failure_code, "charge": self.id}
        if getattr(self, "_decline_code", None):
            contents["decline_code"] = self._decline_code
        raise UserError(402, self.failure_message, contents)

    resources.PaymentMethod._charging_is_declined = _charging_is_declined
    resources.Charge._set_auth_failure = _set_auth_failure
    resources.Charge._raise_failure = _raise_failure


_BROWSER_CONFIRM = re.compile(r"/v1/payment_intents/(pi_\w+)/confirm")
#: Intent states a browser may confirm from (``requires_payment_method`` again after a decline).
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def confirm_from_browser(intent_id: str, data: Any) -> web.Response:
    """Confirm an intent as Stripe.js's ``confirmCardPayment`` asks Stripe to.

    Authenticated by the publishable key and the intent's client secret, with the card in
    ``payment_method_data``: the card becomes the intent's payment method and the intent is
    confirmed (a card that asks for 3-D Secure leaves it ``requires_action``, for localstripe's
    ``_authenticate``). A declined card is answered as Stripe answers it: 402, a ``card_error``
    carrying the intent.
    """
    if not isinstance(data, dict) or not isinstance(data.get("payment_method_data"), dict):
        raise UserError(400, "Bad request")
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if data.get("client_secret") != intent.client_secret:
        raise UserError(401, "Unauthorized")
    if intent.status not in _CONFIRMABLE:
        raise UserError(
            400,
            f"You cannot confirm this PaymentIntent because it has a status of {intent.status}.",
            {"code": "payment_intent_unexpected_state"},
        )
    method = resources.PaymentMethod(**data["payment_method_data"])
    try:
        intent.latest_charge = None  # a new attempt after a decline: Stripe makes a new charge
        intent.payment_method = method.id
        intent._confirm(on_failure_now=intent._report_failure)
    except UserError as error:
        if error.code != 402:
            raise
        body = error.body
        body["error"].update(type="card_error", payment_intent=intent._export())
        declined: web.Response = json_response(body, status=402)
        return declined
    finally:
        store.dump_to_disk()
    confirmed: web.Response = json_response(intent._export())
    return confirmed


@web.middleware
async def browser_checkout(request: web.Request, handler: Any) -> web.StreamResponse:
    """Stripe.js with a card-paying ``confirmCardPayment``, and the confirm it makes (publishable key)."""
    if request.method == "GET" and request.path == "/js.stripe.com/v3/":
        text = STRIPE_JS.read_text() + "\n" + CARD_JS.read_text()
        return web.Response(text=text, content_type="application/javascript")
    found = _BROWSER_CONFIRM.fullmatch(request.path)
    if request.method == "POST" and found:
        data = await server.get_post_data(request, remove_auth=False)
        if isinstance(data, dict) and str(data.get("key", "")).startswith("pk_"):
            data = {k: v for k, v in data.items() if k not in ("key", "payment_user_agent", "referrer")}
            return confirm_from_browser(found[1], data)
    response: web.StreamResponse = await handler(request)
    return response


def serve_browser_checkout() -> None:
    """Run ``browser_checkout`` inside localstripe's error middleware (so its errors answer as localstripe's)."""
    app.middlewares.insert(app.middlewares.index(server.error_middleware) + 1, browser_checkout)


async def list_webhooks(request: web.Request) -> web.Response:
    """The registered webhooks: id, URL, event types (None: all) and the secret's SHA-256."""
    data = [
        {
            "id": key,
            "url": hook.url,
            "events": hook.events,
            "secretSha256": hashlib.sha256(hook.secret.encode()).hexdigest(),
        }
        for key, hook in webhooks._webhooks.items()
    ]
    return web.json_response({"data": data})


def serve_webhook_listing() -> None:
    app.router.add_get("/_config/webhooks", list_webhooks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True, help="pickle file holding the Stripe objects")
    parser.add_argument("--from-scratch", action="store_true", help="ignore (and overwrite) --state")
    args = parser.parse_args(argv)

    # localstripe reports webhook deliveries on the "aiohttp.access" logger at INFO.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")

    try:
        check_localstripe_internals()
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    use_state_file(args.state)
    accept_refund_reason()
    integer_intent_amounts()
    decline_test_cards()
    serve_browser_checkout()
    serve_webhook_listing()
    if not args.from_scratch:
        store.try_load_from_disk()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
