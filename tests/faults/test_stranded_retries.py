"""A retry waiting in the worker when Redis stops answering must still run once Redis is back (slow).

Dramatiq's consumer of a delay queue holds each delayed message in memory until its time. When
a Redis call fails with anything but a connection error (a timeout while Redis is frozen, or a
connection reset in the middle of promoting a message when Redis is killed), Dramatiq's consumer
closes itself and gives its held messages back to Redis first; if Redis is still away, that call
raised out of the consumer thread, which died, and nothing on that delay queue was promoted again
until the worker restarted. ``adapters.queue.Consumer`` keeps the thread alive and names what it
could not give back; ``workers.middleware.stranded`` requeues it once Redis answers. A freeze
longer than two socket timeouts (5 s each) used to meet the bug every time.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis

from adapters.queue import STRIPE_EVENTS_QUEUE, build_broker, event_message
from adapters.settings import load_settings
from devstack.stack import Stack
from tests.faults.checks import worker_ids
from tests.faults.payments import paid_event
from tests.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: Seconds Redis is frozen: a fetch times out (5 s), then the consumer's give-back does (5 s more).
FREEZE = 12.0
#: The retry's delay: it falls due while Redis is frozen.
DELAY_MS = 8000
#: Seconds after Redis answers again by which the retry, long due, must have run.
AFTER_THAW = 30.0


def held_by_worker(client: redis.Redis, message_id: str) -> bool:
    """True once a live worker's delay-queue consumer has taken the message into memory."""
    workers = worker_ids(client)
    acks = [f"dramatiq:__acks__.{w}.{STRIPE_EVENTS_QUEUE}.DQ" for w in workers]
    return any(client.sismember(key, message_id) for key in acks)


def test_a_retry_due_while_redis_is_frozen_still_runs(
    fault_stack: Stack, fault_db: Any, fault_redis: redis.Redis
) -> None:
    """A delayed event held by the worker while Redis freezes for 12 s is processed soon after Redis answers again."""
    event = paid_event(fault_stack.urls["stripe"], fault_db)
    broker = build_broker(load_settings(fault_stack.app_env(), dotenv=None))
    try:
        message = broker.enqueue(broker.signer.sign(event_message(event)), delay=DELAY_MS)
        redis_id = message.options["redis_message_id"]
    finally:
        broker.close()
    wait_for(lambda: held_by_worker(fault_redis, redis_id), 10, "the retry held by the worker's delay consumer")
    fault_stack.children["redis"].signal(signal.SIGSTOP)
    try:
        time.sleep(FREEZE)  # the fault itself
    finally:
        fault_stack.children["redis"].signal(signal.SIGCONT)
    try:
        processed = {"_id": event["id"], "status": "processed"}
        wait_for(lambda: fault_db.stripe_events.find_one(processed), AFTER_THAW, "the retry processed")
    finally:
        # A worker whose delay consumer died gives its messages back only when it stops.
        fault_stack.restart_part("worker")
        wait_for(lambda: fault_db.stripe_events.find_one(processed), 60, "the retry processed after a restart")
