"""An event moved into a live worker's ack set by a fetch whose answer never came back must still run (slow).

When Redis freezes, a consumer's fetch times out and the consumer reconnects; once Redis answers
again it runs the buffered fetch, which moves messages into that worker's ack set, and nobody
reads the answer. The worker keeps heartbeating, so nothing gave them back until it restarted:
a ``payment_intent.succeeded`` answered 200 waited 300 s, and Stripe never resends it.
``workers.middleware.unheld`` gives back what the ack set holds and the worker does not.

The lost fetch is made here, on a connection of the test's own, during the freeze: the event
is enqueued and fetched for the worker's broker id with ``adapters.queue``'s fetch script in one
transaction (so the worker's consumer cannot take it first), and the answer is never read. The
freeze outlasts the socket timeout, so the worker's own consumers time out and reconnect too.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import pytest
import redis
from dramatiq.common import current_millis
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapters.compat.dramatiq import FETCH
from adapters.queue import REDIS_SOCKET_TIMEOUT, STRIPE_EVENTS_QUEUE, event_message
from adapters.settings import load_settings
from adapters.signing import Signer
from devstack.stack import HEARTBEATS, Stack
from tests.faults.payments import paid_event
from tests.support import wait_for
from workers.middleware.unheld import CHECK_INTERVAL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: Seconds Redis is frozen: longer than a Redis call may take, so the worker's fetches time out too.
FREEZE = REDIS_SOCKET_TIMEOUT + 2.0
#: Seconds the test's own fetch waits for its answer before giving up on it.
LOST_ANSWER = 1.0
#: Seconds after Redis answers again by which the event must have run: two checks, the consumers'
#: restart after their timeout (Dramatiq waits 3 s), and the event's own processing.
AFTER_THAW = 2 * CHECK_INTERVAL + 3.0 + 5.0


def live_workers(client: redis.Redis) -> list[str]:
    """Broker ids that heartbeated in the last 250 ms (an idle consumer fetches every 20 ms)."""
    found: list[bytes] = client.zrangebyscore(HEARTBEATS, current_millis() - 250, "+inf")  # type: ignore[assignment]
    return [w.decode() for w in found]


def the_worker(client: redis.Redis) -> str | None:
    """The one worker process's broker id (an ingress that just enqueued heartbeats too, for a moment)."""
    ids = live_workers(client)
    return ids[0] if len(ids) == 1 else None


def test_an_event_fetched_for_a_live_worker_whose_answer_was_lost_still_runs(
    fault_stack: Stack, fault_db: Any, fault_redis: redis.Redis
) -> None:
    """Redis frozen mid-fetch: the event it moved into the live worker's ack set is given back and processed."""
    event = paid_event(fault_stack.urls["stripe"], fault_db)
    signer = Signer(load_settings(fault_stack.app_env(), dotenv=None).queue_signing_keys)
    redis_id = str(uuid.uuid4())
    message = signer.sign(event_message(event)).copy(options={"redis_message_id": redis_id})
    worker = fault_stack.children["worker"]
    pid = worker.pid
    worker_id = wait_for(lambda: the_worker(fault_redis), 10, "the worker's heartbeat, alone") or ""
    acks = f"dramatiq:__acks__.{worker_id}.{STRIPE_EVENTS_QUEUE}"

    lost = redis.Redis.from_url(fault_stack.urls["redis"], socket_timeout=LOST_ANSWER, retry=Retry(NoBackoff(), 0))
    lost.ping()  # connected before the freeze
    redis_server = fault_stack.children["redis"]
    redis_server.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        fetch = lost.pipeline(transaction=True)
        fetch.hset(f"dramatiq:{STRIPE_EVENTS_QUEUE}.msgs", redis_id, message.encode())  # as dispatch.lua enqueues
        fetch.rpush(f"dramatiq:{STRIPE_EVENTS_QUEUE}", redis_id)
        fetch.eval(FETCH, 1, "dramatiq", STRIPE_EVENTS_QUEUE, worker_id, current_millis(), 1000)
        with pytest.raises(redis.TimeoutError):
            fetch.execute()
        lost.close()
        time.sleep(max(0.0, FREEZE - (time.monotonic() - frozen)))  # the fault itself
    finally:
        redis_server.signal(signal.SIGCONT)
    thawed = time.monotonic()
    processed = {"_id": event["id"], "status": "processed"}
    try:
        # Redis ran the buffered fetch: the event sits in the worker's ack set, where nothing reads it.
        wait_for(lambda: fault_redis.sismember(acks, redis_id), CHECK_INTERVAL / 2, "the lost fetch to run")
        assert not fault_db.stripe_events.find_one({"_id": event["id"]})
        wait_for(lambda: fault_db.stripe_events.find_one(processed), AFTER_THAW, "the stranded event to be processed")
        print(f"processed {time.monotonic() - thawed:.1f} s after Redis answered again")
        assert worker.alive() and worker.pid == pid
        assert wait_for(lambda: the_worker(fault_redis), 5, "the worker's heartbeat") == worker_id  # never restarted
        # The inbox records the event processed just before Dramatiq acks its message.
        wait_for(lambda: not fault_redis.sismember(acks, redis_id), 5, "the given-back message to be acked")
    finally:
        if not fault_db.stripe_events.find_one(processed):
            fault_stack.restart_part("worker")  # its ack set goes back to the queue once its heartbeat is stale
            wait_for(lambda: fault_db.stripe_events.find_one(processed), 60, "the event processed after a restart")
