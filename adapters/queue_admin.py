"""Dramatiq's Redis queues as ops see them: depths, dead letters, fresh copies of stored messages.

Key layout (Dramatiq's, ``adapters.compat.dramatiq``): ``<ns>:<queue>`` the ready list,
``<ns>:<queue>.DQ.msgs`` delayed messages, ``<ns>:__acks__.<broker>.<queue>`` what a worker holds,
``<ns>:<queue>.XQ`` (and ``.XQ.msgs``) the dead letters.
"""

from __future__ import annotations

import time
from typing import Any

from dramatiq import Message

from adapters.compat import dramatiq as internals
from adapters.dead_workers import queues, requeue_dead_workers, stale_workers
from adapters.queue import Broker
from adapters.signing import SIGNATURE


class RedisQueueAdmin:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def depths(self) -> dict[str, dict[str, int]]:
        """Per queue: ready, delayed, in flight (held by any worker) and dead."""
        ns, client = self.broker.namespace, self.broker.client
        out: dict[str, dict[str, int]] = {}
        delay = internals.DELAY_SUFFIX
        for queue in sorted(q for q in queues(self.broker) if not q.endswith(delay)):
            held = sum(
                int(client.scard(key))
                for name in (queue, f"{queue}{delay}")
                for key in client.scan_iter(internals.ack_sets_pattern(ns, name))
            )
            out[queue] = {
                "ready": int(client.llen(internals.queue_key(ns, queue))),
                "delayed": int(client.hlen(internals.messages_key(ns, f"{queue}{delay}"))),
                "in_flight": held,
                "dead": int(client.zcard(internals.dead_letters_key(ns, queue))),
            }
        return out

    def authentic(self, encoded: str) -> bool:
        try:
            return self.broker.signer.verifies(Message.decode(encoded.encode()))
        except Exception:
            return False

    def enqueue_copy(self, encoded: str) -> None:
        """A copy with the stored message's signature and nothing else of its options (retries, delays
        and failures start afresh; an option the signature does not cover is never carried over)."""
        message: Message[Any] = Message.decode(encoded.encode())
        queue = message.queue_name.removesuffix(internals.DELAY_SUFFIX)  # a delayed retry goes back to its own queue
        fresh: Message[Any] = Message(
            queue_name=queue,
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options={SIGNATURE: message.options[SIGNATURE]},
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
        self.broker.client.zrem(internals.dead_letters_key(ns, queue), redis_message_id)
        self.broker.client.hdel(internals.dead_messages_key(ns, queue), redis_message_id)
