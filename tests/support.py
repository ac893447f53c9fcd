"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from payments_ops import events

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def signed(event: dict[str, Any], secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a delivery as Stripe makes it."""
    body = json.dumps(event).encode()
    return body, {"Content-Type": "application/json", "Stripe-Signature": events.sign(body, secret, timestamp)}


def queued_messages(redis_client: Any, queue: str) -> list[Any]:
    """Messages waiting in a Dramatiq Redis queue (``.XQ`` for its dead letters), decoded."""
    from dramatiq import Message

    return [Message.decode(raw) for raw in redis_client.hvals(f"dramatiq:{queue}.msgs")]


def mails_to(mail_dir: Any, *addresses: str) -> list[Any]:
    """Messages in the SMTP sink's folder addressed to any of ``addresses``, parsed."""
    import email
    from pathlib import Path

    found = []
    for path in sorted(Path(mail_dir).glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        if any(a in str(message.get("X-Sink-Envelope-To", "")) for a in addresses):
            found.append(message)
    return found
