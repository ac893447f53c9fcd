"""Every queued message carries the project's HMAC; the worker refuses one that does not verify (DESIGN §5)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker

from adapters.queue import SIGNATURE, SignMessages, event_message
from devstack import events
from workers.middleware.authenticity import Unsigned, VerifySignatures

KEY = b"k" * 32


def signed_event() -> Message[Any]:
    message = event_message(events.event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"}))
    SignMessages(KEY).before_enqueue(StubBroker(), message, None)
    return message


def verify(message: Message[Any]) -> None:
    VerifySignatures(KEY).before_process_message(StubBroker(), MessageProxy(message))


def test_a_signed_message_verifies_whatever_the_broker_renews() -> None:
    """Retries renew ids, timestamps and queue names; the signature covers the actor and arguments only."""
    message = signed_event()
    verify(message)
    renewed = message.copy(
        message_timestamp=1, queue_name="stripe-events.DQ", options={**message.options, "retries": 3}
    )
    verify(renewed)


@pytest.mark.parametrize(
    "change",
    [
        {"args": ({"id": "evt_forged", "type": "payment_intent.succeeded"},)},
        {"actor_name": "send_notification"},
        {"kwargs": {"extra": 1}},
    ],
)
def test_a_changed_message_does_not_verify(change: dict[str, Any]) -> None:
    """Arguments, actor or keyword arguments changed in Redis after signing: refused."""
    with pytest.raises(Unsigned, match="does not verify"):
        verify(dataclasses.replace(signed_event(), **change))


def test_an_unsigned_message_is_refused_and_another_key_does_not_verify() -> None:
    """No signature at all, or one made with another key: refused before any actor runs."""
    message = signed_event()
    with pytest.raises(Unsigned, match="no signature"):
        verify(dataclasses.replace(message, options={}))
    with pytest.raises(Unsigned, match="does not verify"):
        VerifySignatures(b"x" * 32).before_process_message(StubBroker(), MessageProxy(message))
    assert len(message.options[SIGNATURE]) == 64
