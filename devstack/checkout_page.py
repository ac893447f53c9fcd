"""The checkout page of the local stack: the frontend's stand-in, on an origin of its own (as Vite's 5173).

    python -m devstack.checkout_page --port 5173 --config var/checkout.json [--host 127.0.0.1]

Serves, for GET and HEAD only:

- ``/`` and the page's files from ``clients/checkout/``;
- ``/payments-api/…`` from ``clients/payments-api/dist/`` (the TypeScript client compiled to ES
  modules, ``devstack.node.build``);
- ``/config.json``: the ``--config`` file, read at each request: the payments API's URL, the
  Stripe publishable key and Stripe.js's URL, the demo users' JWTs and the services to pick from.
  For development only: anyone who reaches the page gets those tokens, so it listens on
  127.0.0.1 and the file is written by the local stack alone (``write_config``).

Every answer is ``Cache-Control: no-store`` (an edit shows at the next reload) with ``nosniff``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.node import CHECKOUT, CLIENT

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".map": "application/json",
}


def write_config(
    path: Path,
    api: str,
    stripe_js: str,
    publishable_key: str,
    users: Sequence[Mapping[str, str]],
    services: Sequence[Mapping[str, Any]],
) -> None:
    """Write what ``/config.json`` answers (atomically: the page may be reading it)."""
    from devstack.stack import write_private

    config = {
        "apiBaseUrl": api,
        "stripe": {"publishableKey": publishable_key, "jsUrl": stripe_js},
        "users": list(users),
        "services": list(services),
    }
    write_private(path, json.dumps(config, indent=2) + "\n")


class _Handler(BaseHTTPRequestHandler):
    server: CheckoutServer
    server_version = "checkout-page"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()

    def _file(self) -> Path | None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/config.json":
            return self.server.config
        if path in ("/", "/index.html"):
            return self.server.page / "index.html"
        root, rest = self.server.page, path.lstrip("/")
        if path.startswith("/payments-api/"):
            root, rest = self.server.client, path.removeprefix("/payments-api/")
        candidate = (root / rest).resolve()
        if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
            return None
        return candidate

    def _answer(self, body: bool) -> None:
        found = self._file()
        if found is None or found.suffix not in TYPES:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            data = found.read_bytes()
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", TYPES[found.suffix])
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)


class CheckoutServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: Path, page: Path = CHECKOUT, client: Path = CLIENT) -> None:
        self.config = config.resolve()
        self.page = page.resolve()
        self.client = (client / "dist").resolve()
        super().__init__(address, _Handler)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True, help="the JSON answered at /config.json")
    args = parser.parse_args(argv)
    server = CheckoutServer((args.host, args.port), args.config)
    signal.signal(signal.SIGTERM, _stop)
    print(f"checkout page on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
