"""What the apps take for Stripe's API in the fault suite: the local Stripe behind a front of our own.

The front adds what the local Stripe lacks and the pipeline relies on: Stripe's idempotency keys
(a POST with a key seen before gets the first answer again; one whose first request is still
running gets ``409 idempotency_error``; one with other parameters gets ``400``). And while told
to (``failing``), it refuses a share of the requests, alternating 500 and 429, with Stripe's
error shapes, so the SDK raises what it raises against the real API. Refused requests never
reach the local Stripe and their keys are not recorded, as for a request Stripe never ran.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.procs import free_port

#: Headers that belong to one connection, not to the request or response being relayed.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"})

Answer = tuple[int, list[tuple[str, str]], bytes]


def stripe_error(status: int, kind: str, message: str, code: str | None = None) -> Answer:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return status, [("Content-Type", "application/json")], json.dumps({"error": error}).encode()


IN_PROGRESS = "There is currently another in-progress request using this idempotency key."
CHANGED = "Keys for idempotent requests can only be used with the same parameters they were first used with."

REFUSALS: dict[int, Answer] = {
    500: stripe_error(500, "api_error", "An unknown error occurred (injected by the fault suite)."),
    429: stripe_error(429, "invalid_request_error", "Too many requests (injected by the fault suite).", "rate_limit"),
}


class StripeFront:
    """Relay to ``upstream`` with Stripe's idempotency keys; while ``failing(share)``, refuse that share.

    Parameters:
      upstream(str): the local Stripe's base URL.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = free_port()
        self.share = 0.0
        self.seen = 0
        self.refused: dict[int, int] = {500: 0, 429: 0}
        #: Requests answered from the idempotency record, or refused as a concurrent or changed replay.
        self.replayed = 0
        self._keys: dict[str, tuple[str, Answer | None]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-front", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StripeFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def failing(self, share: float) -> None:
        """Refuse ``share`` (0 to 1) of the requests from now on, spread evenly; 0 heals."""
        with self._lock:
            self.share = share

    def total_refused(self) -> int:
        return sum(self.refused.values())

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """What Stripe would answer this request."""
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        if method != "POST":
            key = None
        if key is None:
            return self._relay(method, path, headers, body)
        fingerprint = hashlib.sha256(f"{method} {path} ".encode() + body).hexdigest()
        with self._lock:
            known = self._keys.get(key)
            if known is None:
                self._keys[key] = (fingerprint, None)
        if known is not None:
            with self._lock:
                self.replayed += 1
            if known[0] != fingerprint:
                return stripe_error(400, "idempotency_error", CHANGED)
            if known[1] is None:
                return stripe_error(409, "idempotency_error", IN_PROGRESS)
            return known[1]
        try:
            answer = self._relay(method, path, headers, body)
        except BaseException:
            with self._lock:
                del self._keys[key]
            raise
        with self._lock:
            self._keys[key] = (fingerprint, answer)
        return answer

    def _refusal(self) -> Answer | None:
        with self._lock:
            before, self.seen = self.seen, self.seen + 1
            if int(self.seen * self.share) == int(before * self.share):
                return None
            status = 500 if self.total_refused() % 2 == 0 else 429
            self.refused[status] += 1
            return REFUSALS[status]

    def _relay(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        with contextlib.closing(connection):
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    status, answer_headers, answer = front.answer(self.command, self.path, headers, body)
                except OSError as error:
                    status, answer_headers, answer = 502, [("Content-Type", "text/plain")], f"{error}".encode()
                self.send_response(status)
                for name, value in answer_headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the counts say what happened."""

        return Handler
