"""Enqueue several messages in one Redis round trip, each exactly as ``broker.enqueue`` would.

``RedisBroker.enqueue`` costs one round trip per message (a call of Dramatiq's ``dispatch.lua``).
A handler that asks for two emails paid two; here the same script calls go out together in one
non-transactional pipeline. Each message is still prepared as ``enqueue`` prepares it: its own
``redis_message_id``, the broker's ``before_enqueue`` middleware (``SignMessages`` signs it
there, so the worker verifies it as any other) and ``after_enqueue`` once it is in Redis; the
script and its arguments are Dramatiq's own (``dispatch_args``, checked against
``RedisBroker._dispatch`` by ``tests/unit/test_pipelined_enqueue.py``; Dramatiq is pinned).

Not atomic, and need not be: a fault after some of the calls leaves some messages queued, and
the caller's retry queues them all again; every message here is safe to receive twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import dramatiq
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis
from redis.exceptions import NoScriptError


def dispatch_args(broker: RedisBroker, command: str, queue_name: str, *args: Any) -> list[Any]:
    """The ``ARGV`` of ``dispatch.lua`` for ``command``, built as ``RedisBroker._dispatch`` builds it (2.2.1)."""
    return [
        command,
        current_millis(),
        queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        broker._should_do_maintenance(command),
        broker._max_unpack_size(),
        *args,
    ]


def enqueue_all(broker: dramatiq.Broker, messages: Sequence[Message[Any]]) -> list[Message[Any]]:
    """Enqueue ``messages`` (none delayed) in one round trip; returns them as enqueued.

    One message, or a broker that is not Redis, goes through ``broker.enqueue`` itself. Raises
    what Redis raised, as ``enqueue`` would, so the caller's job retries.
    """
    if len(messages) < 2 or not isinstance(broker, RedisBroker):
        return [broker.enqueue(message) for message in messages]
    prepared = []
    for message in messages:
        message = message.copy(options={"redis_message_id": str(uuid4())})
        broker.emit_before("enqueue", message, None)
        prepared.append(message)
    script = broker.scripts["dispatch"]
    pipe = broker.client.pipeline(transaction=False)
    for message in prepared:
        redis_id = message.options["redis_message_id"]
        args = dispatch_args(broker, "enqueue", message.queue_name, redis_id, message.encode())
        # evalsha, not the Script object: a pipeline holding a Script asks SCRIPT EXISTS first,
        # which is one more round trip on every call.
        pipe.evalsha(script.sha, 1, broker.namespace, *args)
    results = pipe.execute(raise_on_error=False)
    errors = []
    for message, result in zip(prepared, results, strict=True):
        if isinstance(result, NoScriptError):
            # Redis lost its scripts (a restart): the script's own call loads it again.
            broker.do_enqueue(message.queue_name, message.options["redis_message_id"], message.encode())
        elif isinstance(result, Exception):
            errors.append(result)
    if errors:
        raise errors[0]
    for message in prepared:
        broker.emit_after("enqueue", message, None)
    return prepared
