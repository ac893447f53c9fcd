"""One client cannot hold the ingress: header size, slow heads and bodies, Host in redirects.

A real ``python -m ingress`` (uvicorn, the protocol it serves with) on the test Redis and MongoDB,
and raw sockets that write what a hostile client writes: a 32 MiB header, a head or a body sent a
byte at a time or never finished, a trailing-slash path with a forged ``Host``. Every wait polls
with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.settings import Settings
from devstack.procs import Child, free_port, python_module
from payments_ops.config import LOCAL_STRIPE_KEY
from tests.integration.api_support import JWT_SECRET, bearer, seed

HOST = "127.0.0.1"
#: The server's head and body timeouts here (the defaults are 10 s and 30 s).
HEAD_TIMEOUT = 2
BODY_TIMEOUT = 2
#: How much longer than its timeout a connection may stay open (the timer, a loaded 2-core machine).
SLACK = 3.0
MIB = 1024 * 1024


@dataclass
class Server:
    child: Child
    port: int

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` figure of the server in bytes (``VmRSS``, ``VmHWM``)."""
        for line in Path(f"/proc/{self.child.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key} in /proc/{self.child.pid}/status")

    def connect(self) -> socket.socket:
        return socket.create_connection((HOST, self.port), timeout=10)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/api/webhooks/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False


@pytest.fixture(scope="module")
def server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m ingress`` with short head and body timeouts, in a directory without ``.env``."""
    here = tmp_path_factory.mktemp("edge")
    port = free_port()
    env = {
        "APP_ENV": "test",
        "HOST": HOST,
        "PORT": str(port),
        "REDIS_URL": settings.redis_url,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "STRIPE_SECRET_KEY": LOCAL_STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": "whsec_edge",
        "JWT_SECRET": JWT_SECRET,
        "OPS_TOKEN": "edge-ops-token-of-some-length",
        "HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "LOG_LEVEL": "WARNING",
    }
    child = Child("ingress-edge", python_module("ingress"), here / "logs", env=env, cwd=here).start()
    running = Server(child, port)
    try:
        child.wait_until(running.healthy, 30, "health check")
        yield running
    finally:
        child.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> Any:
        return json.loads(self.body)["error"]


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


def read_all(sock: socket.socket, limit: float = 10) -> bytes:
    """Everything the server writes until it closes (a reset ends it too)."""
    sock.settimeout(limit)
    raw = b""
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return raw


def exchange(server: Server, request: bytes) -> Answer:
    with server.connect() as sock:
        sock.sendall(request)
        return parse_answer(read_all(sock))


def wait_closed(socks: list[socket.socket], limit: float, trickle: bytes = b"") -> tuple[float, list[bytes]]:
    """Wait until the server has closed every socket, writing ``trickle`` to each every 0.25 s meanwhile.

    Returns how long the last one stayed open and what the server wrote on each; fails once
    ``limit`` seconds have passed with one still open.
    """
    began = time.monotonic()
    answers = [b""] * len(socks)
    open_ = set(range(len(socks)))
    next_write = began
    while open_:
        now = time.monotonic()
        if now - began > limit:
            raise AssertionError(f"{len(open_)} of {len(socks)} connections still open after {limit}s")
        if trickle and now >= next_write:
            for i in list(open_):
                try:
                    socks[i].send(trickle)
                except OSError:
                    open_.discard(i)
            next_write = now + 0.25
        ready, _, _ = select.select([socks[i] for i in open_], [], [], 0.05)
        for sock in ready:
            i = socks.index(sock)
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                answers[i] += chunk
            else:
                open_.discard(i)
    return time.monotonic() - began, answers


# Header size -----------------------------------------------------------------------------------------


def test_a_head_over_16_kib_is_431_in_the_error_shape(server: Server) -> None:
    """A 20 KiB cookie: 431 ``headers_too_large``; an 8 KiB one is served as before."""
    small = b"GET /api/webhooks/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\nCookie: " + b"c" * 8192 + b"\r\n\r\n"
    assert exchange(server, small).status == 200
    big = b"GET /api/webhooks/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\nCookie: " + b"c" * 20480 + b"\r\n\r\n"
    answer = exchange(server, big)
    assert answer.status == 431, answer
    assert answer.error()["code"] == "headers_too_large"
    assert answer.headers["connection"] == "close"


def test_four_32_mib_authorization_headers_are_cut_off_without_memory_growth(server: Server) -> None:
    """Four clients at once each writing a 32 MiB ``Authorization`` header: each is cut off (431 or the
    connection closed under it) long before its 32 MiB, and the server's RSS never grows by more than 64 MiB."""
    size = 32 * MIB
    before = server.status("VmRSS")
    peak = before
    outcomes: list[tuple[int, bytes]] = []

    def attack() -> None:
        sent = 0
        with server.connect() as sock:
            try:
                sock.sendall(b"POST /api/payments/create-intent HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ")
                block = b"a" * (256 * 1024)
                while sent < size:
                    sock.sendall(block)
                    sent += len(block)
                sock.sendall(b"\r\nContent-Length: 2\r\n\r\n{}")
            except OSError:
                pass
            outcomes.append((sent, read_all(sock, 30)))

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 90
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        peak = max(peak, server.status("VmRSS"))
        time.sleep(0.01)
    for thread in threads:
        thread.join(10)
    peak = max(peak, server.status("VmRSS"))
    growth = peak - before
    print(f"RSS before {before / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB, growth {growth / MIB:.1f} MiB")
    assert len(outcomes) == 4
    for sent, raw in outcomes:
        assert sent < size, f"the server read a whole 32 MiB header and answered {raw[:80]!r}"
        assert not raw or parse_answer(raw).status == 431, raw[:200]
    assert growth < 64 * MIB, f"RSS grew by {growth / MIB:.1f} MiB"
    assert server.healthy()


# Slow heads and bodies -------------------------------------------------------------------------------


def test_heads_sent_a_byte_at_a_time_or_never_are_closed_after_the_head_timeout(server: Server) -> None:
    """Twenty connections trickling a header a byte every 0.25 s, and five that send nothing: all closed
    within the head timeout (408 to those that began a request), and the server still answers."""
    opened = time.monotonic()
    with contextlib.ExitStack() as sockets:
        trickling = [sockets.enter_context(server.connect()) for _ in range(20)]
        silent = [sockets.enter_context(server.connect()) for _ in range(5)]
        for sock in trickling:
            sock.sendall(b"GET /api/webhooks/health HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        _, answers = wait_closed(trickling, HEAD_TIMEOUT + SLACK, trickle=b"x")
        trickled_for = time.monotonic() - opened
        _, idle_answers = wait_closed(silent, HEAD_TIMEOUT + SLACK)
        idle_for = time.monotonic() - opened
    print(f"open after connecting: trickling heads {trickled_for:.2f}s, silent connections {idle_for:.2f}s")
    assert HEAD_TIMEOUT - 0.5 <= trickled_for <= HEAD_TIMEOUT + SLACK and idle_for <= HEAD_TIMEOUT + SLACK
    for raw in answers:
        if raw:  # a reset may swallow it; when it arrives it is the API's 408
            answer = parse_answer(raw)
            assert (answer.status, answer.error()["code"]) == (408, "request_timeout")
    assert any(answers) and idle_answers == [b""] * 5
    assert server.healthy()


def test_a_keep_alive_connection_trickling_its_next_head_is_closed(server: Server) -> None:
    """A first request answered, then the next head a byte at a time: closed within the head timeout."""
    with server.connect() as sock:
        sock.sendall(b"GET /api/webhooks/health HTTP/1.1\r\nHost: a\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        sock.sendall(b"GET /api/webhooks/health HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        waited, _ = wait_closed([sock], HEAD_TIMEOUT + SLACK, trickle=b"x")
    assert waited >= HEAD_TIMEOUT - 0.5


@pytest.mark.parametrize("trickle", [b"", b"x"], ids=["truncated", "trickled"])
def test_a_webhook_body_never_finished_is_closed_after_the_body_timeout(server: Server, trickle: bytes) -> None:
    """``Content-Length: 100000`` and 10 bytes, then nothing or a byte every 0.25 s: 408 and closed."""
    with server.connect() as sock:
        sock.sendall(b"POST /api/webhooks/stripe HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"{" * 10)
        waited, (raw,) = wait_closed([sock], BODY_TIMEOUT + SLACK, trickle=trickle)
    print(f"{trickle!r} webhook body closed after {waited:.2f}s")
    assert waited >= BODY_TIMEOUT - 0.5
    answer = parse_answer(raw)
    assert (answer.status, answer.error()["code"]) == (408, "request_timeout")


def test_a_payment_body_never_finished_is_closed_after_the_body_timeout(server: Server, db: Any) -> None:
    """A signed-in customer's create-intent whose body never ends (Starlette waits on it): 408 and closed."""
    seeded = seed(db)
    auth = bearer(seeded.customer)["Authorization"].encode()
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/payments/create-intent HTTP/1.1\r\nHost: a\r\nAuthorization: " + auth
            + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"serviceId\": "
        )  # fmt: skip
        waited, (raw,) = wait_closed([sock], BODY_TIMEOUT + SLACK)
    print(f"payment body closed after {waited:.2f}s")
    answer = parse_answer(raw)
    assert (answer.status, answer.error()["code"]) == (408, "request_timeout")
    assert db.payments.count_documents({}) == 0


# Redirects --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_line", [b"GET /ops/login/", b"GET /api/webhooks/health/", b"POST /api/payments/create-intent/"]
)
def test_a_trailing_slash_is_404_never_a_redirect_to_the_host_header(server: Server, request_line: bytes) -> None:
    """``Host: evil.example`` on a path with a trailing slash: 404 in the API's shape, no ``Location``."""
    answer = exchange(
        server,
        request_line + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    assert "evil.example" not in answer.headers.get("location", ""), answer
    assert (answer.status, answer.error()["code"]) == (404, "not_found")


# What clients do every day still works ---------------------------------------------------------------


def test_pipelined_chunked_and_slow_but_steady_requests_are_served(server: Server) -> None:
    """Two requests in one write, a chunked body, and a body in pieces within the deadline: all answered."""
    health = b"GET /api/webhooks/health HTTP/1.1\r\nHost: a\r\n\r\n"
    chunked = (
        b"POST /api/webhooks/stripe HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Stripe-Signature: t=1,v1=00\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    with server.connect() as sock:
        sock.sendall(health + health + chunked)
        raw = read_all(sock)
    assert raw.count(b"HTTP/1.1 200 OK") == 2 and b"HTTP/1.1 400 Bad Request" in raw
    assert b"invalid_signature" in raw
    with server.connect() as sock:
        sock.sendall(b"POST /api/webhooks/stripe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n")
        sock.sendall(b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 4\r\n\r\n{")
        time.sleep(BODY_TIMEOUT / 2)  # the client's own pace: slow, but within the deadline
        sock.sendall(b'"}')
        sock.sendall(b"}")
        answer = parse_answer(read_all(sock))
    assert (answer.status, answer.error()["code"]) == (400, "invalid_signature")
