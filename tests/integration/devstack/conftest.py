"""Fixtures that run the local stand-ins (localstripe, SMTP sink) as child processes on free ports."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from devstack.procs import Child, free_port, python_module

HOST = "127.0.0.1"
API_KEY = "sk_test_devstack"


@dataclass
class LocalStripe:
    child: Child
    port: int
    state: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def start_localstripe(
    name: str, log_dir: Path, state: Path, port: int | None = None, from_scratch: bool = False
) -> LocalStripe:
    """Start ``devstack.localstripe_server`` and wait for its ready line."""
    port = port or free_port()
    args = ["--host", HOST, "--port", str(port), "--state", str(state)]
    if from_scratch:
        args.append("--from-scratch")
    child = Child(name, python_module("devstack.localstripe_server", *args), log_dir).start()
    ready = f"localstripe listening on http://{HOST}:{port}"
    child.wait_until(lambda: ready in child.log_path.read_text(errors="replace"), 20.0, "ready line")
    return LocalStripe(child, port, state)


def stripe_client_for(url: str) -> tuple[stripe.StripeClient, stripe.HTTPClient]:
    """A StripeClient aimed at ``url``, and its HTTP client (to close: no leaked sockets)."""
    http_client = stripe.RequestsClient()
    # No retries: a retried POST would hide what localstripe did with the first one.
    client = stripe.StripeClient(
        api_key=API_KEY, base_addresses={"api": url}, http_client=http_client, max_network_retries=0
    )
    return client, http_client


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """One localstripe for the module, with a fresh state file in pytest's tmp dir."""
    base = tmp_path_factory.mktemp("localstripe")
    server = start_localstripe("localstripe", base, base / "state.pickle", from_scratch=True)
    yield server
    server.child.stop()


@pytest.fixture
def stripe_client(localstripe: LocalStripe) -> Iterator[stripe.StripeClient]:
    """The official SDK client pointed at the module's localstripe."""
    client, http_client = stripe_client_for(localstripe.url)
    yield client
    http_client.close()


@dataclass
class WebhookDelivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class WebhookReceiver:
    """Collects the POSTs localstripe sends; ``secret`` is the one registered with it."""

    url: str
    secret: str
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> WebhookDelivery:
        """Return the first delivery whose event satisfies ``match``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for delivery in self.deliveries:
                    if match(delivery.event):
                        return delivery
            time.sleep(0.05)
        with self.lock:
            seen = [d.event.get("type") for d in self.deliveries]
        raise AssertionError(f"no matching webhook within {timeout}s; got {seen}")


@pytest.fixture(scope="module")
def webhook_receiver(localstripe: LocalStripe) -> Iterator[WebhookReceiver]:
    """An HTTP receiver on a free port, registered as a webhook endpoint on the module's localstripe."""
    receiver = WebhookReceiver(url="", secret="whsec_" + uuid.uuid4().hex)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.deliveries.append(WebhookDelivery(dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    receiver.url = f"http://{HOST}:{server.server_address[1]}/stripe/webhook"
    response = httpx.post(
        f"{localstripe.url}/_config/webhooks/test",
        data={"url": receiver.url, "secret": receiver.secret},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class SmtpSink:
    child: Child
    port: int
    directory: Path

    def messages(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    """A fresh ``devstack.smtp_sink`` writing into this test's tmp dir."""
    port = free_port()
    directory = tmp_path / "mail"
    child = Child(
        "smtp_sink",
        python_module("devstack.smtp_sink", "--host", HOST, "--port", str(port), "--dir", str(directory)),
        tmp_path,
    ).start()
    ready = f"smtp sink listening on {HOST}:{port}, writing {directory}"
    child.wait_until(lambda: ready in child.log_path.read_text(errors="replace"), 20.0, "ready line")
    yield SmtpSink(child, port, directory)
    child.stop()
