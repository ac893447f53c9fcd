"""Event parsing rejects what can never be handled; logs are JSON with ids and no secrets."""

from __future__ import annotations

import json
import logging

import pytest

from adapters.logs import JsonFormatter, log_context
from domain.errors import PermanentError
from domain.events import StripeEvent
from payments_ops import events


def test_an_event_without_an_object_id_is_permanent() -> None:
    """A Stripe event without data.object.id can never be handled: PermanentError names it."""
    payload = events.event("payment_intent.succeeded", {"object": "payment_intent"}, event_id="evt_x")
    with pytest.raises(PermanentError, match="evt_x"):
        StripeEvent.parse(payload)


def test_a_realistic_event_parses() -> None:
    """A fixture-shaped event parses with its object id and creation time."""
    intent = events.payment_intent("payment_intent.succeeded", "pi_9", 100, "usd", {})
    parsed = StripeEvent.parse(events.event("payment_intent.succeeded", intent, created=1_700_000_000))
    assert (parsed.object_id, parsed.created_at.year) == ("pi_9", 2023)


def test_log_lines_are_json_with_context_and_whitelisted_fields() -> None:
    """A log line carries the context ids and drops extra keys that are not whitelisted."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(outcome="applied", card_number="4242424242424242")
    with log_context(event_id="evt_1", payment_id="pi_1", message_id=None):
        line = json.loads(JsonFormatter().format(record))
    assert line["event_id"] == "evt_1" and line["payment_id"] == "pi_1" and line["outcome"] == "applied"
    assert "message_id" not in line and "4242" not in json.dumps(line)


def test_test_events_for_a_stored_payment_pass_the_activation_check() -> None:
    """Events the dev tools build for a stored payment carry the metadata create-intent writes."""
    from adapters.mongo import _payment
    from domain.activation import intent_mismatch
    from payments_ops.simulate import pending_payment

    doc = pending_payment("pi_stored")
    intent = events.payment_intent("payment_intent.succeeded", "pi_stored", 49900, "INR", events.intent_metadata(doc))
    assert intent_mismatch(_payment(doc), intent) is None
