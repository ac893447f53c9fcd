"""Find worker processes whose heartbeat stopped and give their unacknowledged messages back.

Dramatiq returns a dead worker's in-flight messages only during queue maintenance, which it runs
on a random one in ``maintenance_chance`` broker calls for the queue being called: minutes to
tens of minutes at idle. ``requeue_dead_workers`` runs that same maintenance (Dramatiq's own
``dispatch`` script, so the bookkeeping stays Dramatiq's) on every declared queue at once, and
refreshes the caller's heartbeat on the way. The worker runs it at boot and on a timer; ops can
list and trigger it. The script, its keys and its arguments are Dramatiq internals
(``adapters.compat.dramatiq``, checked at a worker's boot). The loss window this closes:
docs/architecture.md#loss-windows-and-what-closes-them.
"""

from __future__ import annotations

from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from adapters.compat import dramatiq as internals


def queues(broker: RedisBroker) -> list[str]:
    """Every queue the broker knows, delay queues included."""
    return sorted(set(broker.get_declared_queues()) | set(broker.get_declared_delay_queues()))


def stale_workers(broker: RedisBroker) -> dict[str, int]:
    """Broker ids whose heartbeat is older than the timeout, with how many messages each still holds."""
    cutoff = internals.current_millis() - broker.heartbeat_timeout
    found: list[Any] = broker.client.zrangebyscore(internals.heartbeats_key(broker.namespace), 0, cutoff)
    dead = [broker_id.decode() for broker_id in found]
    held: dict[str, int] = {}
    for broker_id in dead:
        acks = [internals.ack_set(broker.namespace, broker_id, queue) for queue in queues(broker)]
        held[broker_id] = sum(int(broker.client.scard(key)) for key in acks)
    return held


def requeue_dead_workers(broker: RedisBroker) -> dict[str, int]:
    """Give back every message held by a dead worker, on every queue; returns what each dead worker held.

    Also refreshes this broker's heartbeat (Dramatiq does so on every script call).
    """
    held = stale_workers(broker)
    for queue in queues(broker):
        internals.run_maintenance(broker, queue)
    return {broker_id: count for broker_id, count in held.items() if count}


def claim_holder(broker: RedisBroker, message: Message[Any]) -> str:
    """Who holds a claim taken by this attempt: the worker, the queue and the Redis id of the message.

    Each enqueue (a retry too) gets a fresh Redis id and a worker holds it in its ack set from
    fetch to ack, so the three name one attempt and tell whether it may still be running.
    """
    return f"{broker.broker_id}:{message.queue_name}:{message.options.get('redis_message_id')}"


def attempt_over(broker: RedisBroker, holder: str) -> bool:
    """True when the attempt that took a claim (``claim_holder``) cannot be running any more.

    Its worker is known dead (its heartbeat is older than the timeout, or gone: Dramatiq drops it
    once the dead worker's messages are requeued), or the live worker no longer holds the message
    (acked, failed into a retry or the dead letters, or given back). A holder this does not
    recognise (another format, another broker) is never known over: its claim waits for its lease.
    A worker cut off from Redis for longer than the timeout looks dead here as it does to Dramatiq,
    which gives its messages to others; the claim's lease is the only fence that outlasts that.
    """
    parts = holder.split(":")
    if len(parts) != 3 or not all(parts):
        return False
    worker, queue, redis_id = parts
    ns, client = broker.namespace, broker.client
    beat = client.zscore(internals.heartbeats_key(ns), worker)
    if beat is None or beat < internals.current_millis() - broker.heartbeat_timeout:
        return True
    return not client.sismember(internals.ack_set(ns, worker, queue), redis_id)
