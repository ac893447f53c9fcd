"""Messages written straight into Redis, as anyone who can reach it could, against a running worker.

Each is stored the way Dramatiq stores a message (``HSET <queue>.msgs id data`` and ``RPUSH <queue>
id``), from outside the project's code. None may run, be delayed, be re-enqueued or be signed by
the worker; each is dead-lettered and recorded with its reason, and good messages around it run.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from dramatiq import Message

from adapters.queue import REFUNDS_QUEUE, STRIPE_EVENTS_QUEUE, event_message, notification_message
from adapters.settings import Settings
from adapters.signing import Signer
from tests.integration.test_worker_failures import stored_succeeded_event
from tests.support import wait_for
from workers.composition import Worker

NS = "dramatiq"


def store(worker: Worker, queue: str, *entries: tuple[str, bytes]) -> None:
    """Store raw entries in one MULTI, as Dramatiq's enqueue would have: what an attacker writes."""
    with worker.broker.client.pipeline(transaction=True) as pipe:
        for redis_id, data in entries:
            pipe.hset(f"{NS}:{queue}.msgs", redis_id, data)
            pipe.rpush(f"{NS}:{queue}", redis_id)
        pipe.execute()


def as_stored(message: Message[Any], **options: Any) -> tuple[str, bytes]:
    """A Redis id and the message as Dramatiq encodes it, with ``options`` added."""
    redis_id = str(uuid.uuid4())
    fields = message.asdict()
    fields["options"] = {**fields["options"], "redis_message_id": redis_id, **options}
    return redis_id, json.dumps(fields).encode()


def refused(db: Any, redis_id: str) -> dict[str, Any]:
    return wait_for(lambda: db.job_failures.find_one({"redisMessageId": redis_id}), what="the refusal's record")


def dead_letter(worker: Worker, queue: str, redis_id: str) -> bytes | None:
    raw: Any = worker.broker.client.hget(f"{NS}:{queue}.XQ.msgs", redis_id)
    return raw  # type: ignore[no-any-return]


def nothing_delayed_or_queued(worker: Worker) -> bool:
    client = worker.broker.client
    keys = [f"{NS}:{q}" for q in (STRIPE_EVENTS_QUEUE, f"{STRIPE_EVENTS_QUEUE}.DQ", REFUNDS_QUEUE, "emails")]
    return all(client.llen(key) == 0 for key in keys)


@pytest.mark.parametrize(
    "options",
    [
        {"eta": 0},  # parked on the worker's delay queue, then re-enqueued by its broker (signed, before)
        {"on_failure": "process_refund", "on_success": "process_refund"},
        {"pipe_target": {"queue_name": REFUNDS_QUEUE, "actor_name": "process_refund", "args": ["pi_x", "r"]}},
        {"max_retries": 100, "time_limit": 1},
    ],
)
def test_an_unsigned_forged_event_with_dramatiq_options_never_runs(
    worker: Worker, db: Any, options: dict[str, Any]
) -> None:
    payment, event = stored_succeeded_event(db)
    redis_id, data = as_stored(event_message(event), **options)
    store(worker, STRIPE_EVENTS_QUEUE, (redis_id, data))
    record = refused(db, redis_id)
    assert record["error"].startswith("Unsigned: message") and record["state"] == "dead"
    assert dead_letter(worker, STRIPE_EVENTS_QUEUE, redis_id) == data  # kept as it was stored
    assert db.payments.find_one({"_id": payment["_id"]})["status"] == "pending"
    assert db.stripe_events.count_documents({}) == 0 and db.enrollments.count_documents({}) == 0
    assert nothing_delayed_or_queued(worker)


@pytest.mark.parametrize(
    "options",
    [
        {"eta": 0, "pipe_target": None},
        {"pipe_target": {"queue_name": STRIPE_EVENTS_QUEUE, "actor_name": "process_stripe_event", "args": []}},
        {"on_failure": "process_refund"},
        {"max_retries": 0},
        {"time_limit": 1},
    ],
)
def test_a_captured_signed_message_resent_with_options_added_is_refused(
    worker: Worker, db: Any, settings: Settings, options: dict[str, Any]
) -> None:
    """An old email message, validly signed, re-sent with options that would make the worker enqueue
    (and, before, sign) a follow-up or change how it runs."""
    captured = Signer(settings.queue_signing_keys).sign(notification_message("welcome:someone"))
    redis_id, data = as_stored(captured, **options)
    store(worker, "emails", (redis_id, data))
    record = refused(db, redis_id)
    assert "options this service never sets" in record["error"]
    assert nothing_delayed_or_queued(worker)


@pytest.mark.parametrize(
    "forge",
    [
        lambda fields: fields["options"].update(signature="é" * 64),  # non-ASCII: compare_digest raised
        lambda fields: fields["args"][0].update(id="\ud800"),  # a lone surrogate: signing raised
        lambda fields: fields.update(queue_name="elsewhere"),  # the worker thread's consumers[...] lookup
        lambda fields: fields["options"].update(redis_message_id="someone-elses-entry"),
    ],
)
def test_a_message_whose_check_would_have_thrown_is_refused(
    worker: Worker, db: Any, settings: Settings, forge: Any
) -> None:
    payment, event = stored_succeeded_event(db)
    redis_id, data = as_stored(Signer(settings.queue_signing_keys).sign(event_message(event)))
    fields = json.loads(data)
    forge(fields)
    data = json.dumps(fields).encode()
    store(worker, STRIPE_EVENTS_QUEUE, (redis_id, data))
    assert refused(db, redis_id)["error"].startswith("Unsigned: message")
    assert db.payments.find_one({"_id": payment["_id"]})["status"] == "pending"


def test_an_undecodable_entry_strands_nothing_fetched_with_it(worker: Worker, db: Any, settings: Settings) -> None:
    """``\\x00not json`` in the same MULTI before a valid signed message: the bad one is dead-lettered
    and recorded, the valid one runs (the consumer neither crashes nor keeps it in its ack set)."""
    payment, event = stored_succeeded_event(db)
    bad_id = str(uuid.uuid4())
    good_id, good = as_stored(Signer(settings.queue_signing_keys).sign(event_message(event)))
    store(worker, STRIPE_EVENTS_QUEUE, (bad_id, b"\x00not json"), (good_id, good))
    wait_for(lambda: db.payments.find_one({"_id": payment["_id"], "status": "completed"}), what="the good message")
    record = refused(db, bad_id)
    assert "could not be decoded" in record["error"] and record["message"] == "\x00not json"
    assert dead_letter(worker, STRIPE_EVENTS_QUEUE, bad_id) == b"\x00not json"
    acks = f"{NS}:__acks__.{worker.broker.broker_id}.{STRIPE_EVENTS_QUEUE}"
    wait_for(lambda: worker.broker.client.scard(acks) == 0, what="the ack set to empty")


def test_a_forged_event_does_not_mark_the_real_one_failed(worker: Worker, db: Any) -> None:
    """A refused message's claims are not believed: the inbox event it names is left as it was."""
    _, event = stored_succeeded_event(db)
    db.stripe_events.insert_one({"_id": event["id"], "status": "received", "payload": event, "attempts": 0})
    redis_id, data = as_stored(event_message(event))
    store(worker, STRIPE_EVENTS_QUEUE, (redis_id, data))
    refused(db, redis_id)
    assert db.stripe_events.find_one({"_id": event["id"]})["status"] == "received"
