"""Serve localstripe (a local Stripe stand-in) on one address with its own state file.

``python -m devstack.localstripe_server --port N [--host 127.0.0.1] --state PATH [--from-scratch]``

localstripe's own CLI binds every interface (``::``) and pickles its state to the fixed file
``/tmp/localstripe.pickle``, so two stacks on one machine (or a test run next to ``make run``) would
share and overwrite each other's data. Here we import its aiohttp ``app`` and serve it ourselves on
``--host`` only, and point its ``Store`` at ``--state``.

That leans on localstripe internals (pinned in pyproject.toml), checked before serving by
``check_localstripe_internals``.

Not persisted (localstripe keeps them in memory): registered webhooks (``POST /_config/webhooks/{id}``)
must be registered again after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import pickle
import signal
import sys
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe.resources import Store, store

# localstripe registers plain (non-async) handlers, which aiohttp deprecates at import time; the
# warning is about localstripe's code, not ours, and would only clutter the log (or, under pytest's
# "error" filter, break an importing test).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Bare functions are deprecated", category=DeprecationWarning)
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

    from localstripe import server  # already imported above (server's warning filtered there)

    for owner, name in [
        (resources, "Store"),
        (resources, "store"),
        (resources, "Refund"),
        (resources, "UserError"),
        (resources, "try_convert_to_int"),
        (resources.PaymentIntent, "_update"),
        (server, "app"),
    ]:
        if not hasattr(owner, name):
            raise changed(f"{owner.__name__} has no {name}")
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
    if not args.from_scratch:
        store.try_load_from_disk()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
