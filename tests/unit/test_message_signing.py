"""A worker runs a message only if the project signed it where it was made (adapters/signing.py).

The hostile messages here are what anyone who can write to Redis can store: unsigned ones, signed
ones with options added, names or arguments changed, signatures that are not even ASCII.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import dramatiq
import pytest
from dramatiq import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.queue import EMAILS_ACTOR, EMAILS_QUEUE, STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE, event_message
from adapters.signing import ALLOWED_OPTIONS, SIGNATURE, AlreadySigned, Signer, refusal
from payments_ops import events

KEY, OLD_KEY = b"k" * 32, b"o" * 32
SIGNER = Signer((KEY,))
ACTORS = (STRIPE_EVENTS_ACTOR,)
REDIS_ID = "6f1c3c1e-0000-4000-8000-000000000001"


def signed_event(signer: Signer = SIGNER) -> Message[Any]:
    message = event_message(events.event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"}))
    signer.sign(message)
    message.options["redis_message_id"] = REDIS_ID  # as the broker stores it
    return message


def door(message: Message[Any], queue: str = STRIPE_EVENTS_QUEUE, signer: Signer = SIGNER) -> str | None:
    return refusal(signer, message, queue=queue, redis_id=REDIS_ID, actors=ACTORS)


def test_a_signed_message_is_let_in_as_it_is_and_after_dramatiq_bookkeeping() -> None:
    """Retries and delays renew timestamps and add their options; the signature still holds."""
    message = signed_event()
    assert door(message) is None
    retried = message.copy(message_timestamp=1, options={**message.options, "retries": 3, "traceback": "…"})
    assert door(retried) is None
    delayed = message.copy(queue_name=f"{STRIPE_EVENTS_QUEUE}.DQ", options={**message.options, "eta": 1})
    assert door(delayed, queue=f"{STRIPE_EVENTS_QUEUE}.DQ") is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"args": ({"id": "evt_forged", "type": "payment_intent.succeeded"},)}, "does not verify"),
        ({"kwargs": {"extra": 1}}, "does not verify"),
        ({"message_id": "another-id"}, "does not verify"),  # the emails actor claims in its name
        ({"actor_name": "send_notification"}, "no actor of its queue"),
        ({"queue_name": EMAILS_QUEUE}, "another queue"),
    ],
)
def test_a_changed_message_is_refused(change: dict[str, Any], reason: str) -> None:
    refused = door(dataclasses.replace(signed_event(), **change))
    assert refused is not None and reason in refused


@pytest.mark.parametrize(
    "option",
    [
        {"pipe_target": {"actor_name": STRIPE_EVENTS_ACTOR, "args": [{}]}},
        {"on_success": "process_refund"},
        {"on_failure": "process_refund"},
        {"max_retries": 1000},
        {"time_limit": 1},
        {"max_age": 1},
        {"throws": None},
        {"retry_when": "x"},
    ],
)
def test_a_signed_message_with_an_option_nobody_here_sets_is_refused(option: dict[str, Any]) -> None:
    """Options that would make Dramatiq enqueue, retry or time out differently are never obeyed."""
    message = signed_event()
    refused = door(message.copy(options={**message.options, **option}))
    assert refused is not None and "options this service never sets" in refused


def test_a_message_stored_under_another_entry_is_refused() -> None:
    """A copy whose ``redis_message_id`` names another entry would ack or dead-letter that one instead."""
    message = signed_event()
    refused = door(message.copy(options={**message.options, "redis_message_id": "someone-else"}))
    assert refused is not None and "another Redis entry" in refused


@pytest.mark.parametrize(
    "forged",
    [
        "é" * 64,  # non-ASCII: compare_digest on str would raise TypeError
        "0" * 63,
        "not hex at all, but sixty-four characters long, padded out: ....",
        None,
        64,
        ["a"],
    ],
)
def test_a_malformed_signature_is_a_refusal_not_an_exception(forged: Any) -> None:
    message = signed_event()
    assert door(message.copy(options={**message.options, SIGNATURE: forged})) is not None


def test_arguments_no_signer_could_have_made_are_refused_not_raised() -> None:
    """A lone surrogate makes both JSON encoders raise; the check refuses instead of letting it run."""
    message = signed_event()
    assert door(dataclasses.replace(message, args=({"id": "\ud800"},))) is not None
    assert door(dataclasses.replace(message, kwargs="not a dict")) is not None  # type: ignore[arg-type]
    assert door(dataclasses.replace(message, options="not a dict")) is not None  # type: ignore[arg-type]


def test_every_key_verifies_and_only_the_first_signs() -> None:
    """Key rotation: what the old key signed (delayed retries, dead letters) still runs."""
    old = signed_event(Signer((OLD_KEY,)))
    rotated = Signer((KEY, OLD_KEY))
    assert door(old, signer=rotated) is None
    assert door(old, signer=SIGNER) is not None
    new = signed_event(rotated)
    assert door(new, signer=SIGNER) is None


def test_nothing_signs_a_message_twice() -> None:
    """A re-enqueue carries its signature: signing a signed message is a bug, not a fresh signature."""
    with pytest.raises(AlreadySigned):
        SIGNER.sign(signed_event())


# Hostile messages: any queue, actor, id, arguments and options, with a random or a real signature.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_names = st.sampled_from([STRIPE_EVENTS_QUEUE, f"{STRIPE_EVENTS_QUEUE}.DQ", EMAILS_QUEUE, "default"]) | st.text()
_some_options = st.dictionaries(
    st.sampled_from(sorted(ALLOWED_OPTIONS | {"pipe_target", "on_failure", "max_retries"})) | st.text(max_size=8),
    _json,
    max_size=4,
)
_options = _some_options | _some_options.map(lambda options: {**options, "redis_message_id": REDIS_ID})


@settings(max_examples=300, deadline=None)
@given(
    queue=_names,
    actor=st.sampled_from([STRIPE_EVENTS_ACTOR, EMAILS_ACTOR, "process_refund"]) | st.text(),
    message_id=st.text(max_size=20),
    args=st.lists(_json, max_size=2),
    kwargs=st.dictionaries(st.text(max_size=5), _json, max_size=2),
    options=_options,
    signature=st.text(max_size=70) | st.just("") | st.none(),
)
def test_no_hostile_message_is_let_in(
    queue: str,
    actor: str,
    message_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    options: dict[str, Any],
    signature: str | None,
) -> None:
    """Whatever is stored, only a message the key signed, with no option beyond the bookkeeping ones,
    on its own queue, entry and actor, gets in."""
    message: Message[Any] = Message(
        queue_name=queue,
        actor_name=actor,
        args=tuple(args),
        kwargs=kwargs,
        options={**options, SIGNATURE: signature} if signature is not None else options,
        message_id=message_id,
    )
    assert door(message) is not None
    # Now the real signature over exactly these contents: let in only when every other rule holds.
    honest = dataclasses.replace(message, options={k: v for k, v in message.options.items() if k != SIGNATURE})
    try:
        SIGNER.sign(honest)
    except (ValueError, TypeError):  # contents nothing of ours can encode (a lone surrogate): never signed
        return
    rules_hold = (
        queue == STRIPE_EVENTS_QUEUE
        and actor in ACTORS
        and set(honest.options) <= ALLOWED_OPTIONS
        and honest.options.get("redis_message_id") == REDIS_ID
    )
    assert (door(honest) is None) == rules_hold


class Door:
    """A worker's consumer of ``stripe-events`` with Redis replaced by lists of what it acked and
    dead-lettered, and the refusals it reported: the door as ``Consumer._admit`` runs it."""

    def __init__(self) -> None:
        from workers.broker import WorkerBroker

        self.broker = WorkerBroker(SIGNER, url="redis://127.0.0.1:9/0", middleware=[])  # never connects
        dramatiq.actor(actor_name=STRIPE_EVENTS_ACTOR, queue_name=STRIPE_EVENTS_QUEUE, broker=self.broker)(
            lambda event: None
        )
        self.nacked: list[str] = []
        self.acked: list[str] = []
        self.refused: list[Any] = []
        # Dramatiq's do_* are looked up by __getattr__ (a Lua call each): instance attributes come first.
        vars(self.broker).update(
            do_nack=lambda queue, redis_id: self.nacked.append(redis_id),
            do_ack=lambda queue, redis_id: self.acked.append(redis_id),
        )
        self.broker.on_refused = self.refused.append
        self.consumer = self.broker.consume(STRIPE_EVENTS_QUEUE, prefetch=1, timeout=20)

    def admit(self, data: bytes) -> Message[Any] | None:
        return self.consumer._admit(REDIS_ID, data)  # type: ignore[attr-defined,no-any-return]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=200)
    | _json.map(lambda value: json.dumps(value).encode())
    | st.builds(
        lambda fields, options: json.dumps(
            {
                "queue_name": STRIPE_EVENTS_QUEUE,
                "actor_name": STRIPE_EVENTS_ACTOR,
                "args": [fields],
                "kwargs": {},
                "options": options,
                "message_id": "m",
                "message_timestamp": 1,
            }
        ).encode(),
        st.dictionaries(st.text(max_size=5), _json, max_size=3),
        _options,
    )
)
def test_whatever_bytes_are_stored_only_a_signed_message_gets_through_and_the_rest_is_dead_lettered(
    data: bytes,
) -> None:
    """Random bytes, random JSON and random message-shaped JSON: each is either let in (and then it
    verifies) or dead-lettered under its own entry and reported, never raised and never kept."""
    door = Door()
    admitted = door.admit(data)
    if admitted is not None:
        assert SIGNER.verifies(admitted) and door.nacked == [] and door.refused == []
    elif data:
        assert door.nacked == [REDIS_ID] and len(door.refused) == 1 and door.refused[0].data == data
    else:
        assert door.acked == [REDIS_ID]  # an id whose data is gone: dropped, nothing to keep


def test_the_door_lets_a_signed_message_in_and_refuses_its_forgeries() -> None:
    """The property's positive side, certain: the real thing gets in, one changed byte does not."""
    message = signed_event()
    door = Door()
    admitted = door.admit(message.encode())
    assert admitted is not None and admitted.message_id == message.message_id
    forged = message.encode().replace(b"pi_1", b"pi_2")
    assert door.admit(forged) is None and door.nacked == [REDIS_ID]
