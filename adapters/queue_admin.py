"""Dramatiq's Redis queues as ops see them: depths, dead letters, fresh copies of stored messages.

Key layout (Dramatiq's, pinned in pyproject.toml): ``<ns>:<queue>`` the ready list,
``<ns>:<queue>.DQ.msgs`` delayed messages, ``<ns>:__acks__.<broker>.<queue>`` what a worker holds,
``<ns>:<queue>.XQ`` (and ``.XQ.msgs``) the dead letters.
"""

from __future__ import annotations

import time
from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from adapters.dead_workers import queues, requeue_dead_workers, stale_workers
from adapters.queue import SIGNATURE, refusal

#: Options a replayed copy starts without: its retry count, failure history, delay and signature.
RESET = ("retries", "failed_attempts", "first_failed_at", "traceback", "requeue_timestamp", "eta", SIGNATURE)


class RedisQueueAdmin:
    def __init__(self, broker: RedisBroker, key: bytes) -> None:
        self.broker = broker
        self.key = key

    def depths(self) -> dict[str, dict[str, int]]:
        """Per queue: ready, delayed, in flight (held by any worker) and dead."""
        ns, client = self.broker.namespace, self.broker.client
        out: dict[str, dict[str, int]] = {}
        for queue in sorted(q for q in queues(self.broker) if not q.endswith(".DQ")):
            held = sum(
                int(client.scard(key))
                for name in (queue, f"{queue}.DQ")
                for key in client.scan_iter(f"{ns}:__acks__.*.{name}")
            )
            out[queue] = {
                "ready": int(client.llen(f"{ns}:{queue}")),
                "delayed": int(client.hlen(f"{ns}:{queue}.DQ.msgs")),
                "in_flight": held,
                "dead": int(client.zcard(f"{ns}:{queue}.XQ")),
            }
        return out

    def authentic(self, encoded: str) -> bool:
        try:
            return refusal(self.key, Message.decode(encoded.encode())) is None
        except Exception:
            return False

    def enqueue_copy(self, encoded: str) -> None:
        message: Message[Any] = Message.decode(encoded.encode())
        options = {k: v for k, v in message.options.items() if k not in RESET and k != "redis_message_id"}
        queue = message.queue_name.removesuffix(".DQ")  # a delayed retry goes back to its own queue
        fresh: Message[Any] = Message(
            queue_name=queue,
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options=options,
            message_id=message.message_id,
            message_timestamp=int(time.time() * 1000),  # AgeLimit measures from here
        )
        self.broker.enqueue(fresh)

    def dead_workers(self) -> dict[str, int]:
        return stale_workers(self.broker)

    def requeue_dead_workers(self) -> dict[str, int]:
        return requeue_dead_workers(self.broker)

    def drop_dead_letter(self, queue: str, redis_message_id: str) -> None:
        ns = self.broker.namespace
        self.broker.client.zrem(f"{ns}:{queue}.XQ", redis_message_id)
        self.broker.client.hdel(f"{ns}:{queue}.XQ.msgs", redis_message_id)
