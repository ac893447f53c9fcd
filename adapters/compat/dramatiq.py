"""Every use of Dramatiq's internals (pinned exactly in pyproject.toml), and the boot check for them.

None of this is Dramatiq's documented API. What the rest of the project takes from here:

- the Redis broker's key layout (ack sets, heartbeats, message hashes, dead letters), which its
  ``dispatch.lua`` defines;
- its Lua scripts: ``dispatch`` (whose argument order the ingress's batched enqueue writes
  itself) and ``maxstack``; and ``FETCH``, this project's fetch, keyed as ``dispatch`` keys;
- its commands run through ``RedisBroker.__getattr__`` (``do_ack``, ``do_nack``,
  ``do_requeue``), its Lua unpack size (``_max_unpack_size``) and its maintenance draw;
- ``_RedisConsumer``, which the worker's consumer extends (it reads and sets ``message_cache``,
  ``queued_message_ids`` and ``misses``), and ``dramatiq.common``'s helpers;
- a worker's consumer threads (``Worker.consumers``, ``ConsumerThread.delay_queue`` and its
  items' ``message``), for the stranded-delay requeue;
- ``Retries`` re-enqueueing through the broker object it is handed (``DurableRetries``);
- the worker thread's logger name (silenced: it logs message arguments).

``check_dramatiq_internals`` stops a worker, and the ingress, at boot if any of it changed.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dramatiq import worker as dramatiq_worker
from dramatiq.brokers import redis as redis_broker
from dramatiq.brokers.redis import DEFAULT_LUA_MAX_STACK, MAINTENANCE_SCALE, RedisBroker, _RedisConsumer, _scripts
from dramatiq.common import compute_backoff as compute_backoff
from dramatiq.common import current_millis as current_millis
from dramatiq.common import dq_name as dq_name
from dramatiq.common import q_name as q_name
from dramatiq.middleware import Retries

from adapters.compat import source_of

#: The Dramatiq release whose internals this module was written against.
DRAMATIQ_PINNED = "2.2.1"

#: Dramatiq's Redis consumer, the base of the worker's (``workers.consumer.Consumer``).
RedisConsumer = _RedisConsumer

#: ``dispatch.lua`` and ``maxstack.lua`` as Dramatiq ships them (the ingress runs them by SHA).
DISPATCH_SCRIPT: bytes = _scripts["dispatch"]
MAXSTACK_SCRIPT: bytes = _scripts["maxstack"]

#: What a delay queue's name adds to its queue's (``dq_name``).
DELAY_SUFFIX = ".DQ"

#: Dramatiq's fetch, which also returns each message's Redis id (dispatch.lua's returns the data
#: alone): a message is then told apart from its entry, so a refused one, or one that is not even
#: JSON, is dead-lettered under its own id. KEYS: namespace; ARGV: queue, worker id, now, count.
FETCH = """
local namespace, queue, worker, now = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
redis.call("zadd", namespace .. ":__heartbeats__", now, worker)
local acks = namespace .. ":__acks__." .. worker .. "." .. queue
local list = namespace .. ":" .. queue
local ids = {}
for i = 1, tonumber(ARGV[4]) do
    local id = redis.call("lpop", list)
    if not id then break end
    ids[i] = id
    redis.call("sadd", acks, id)
end
if #ids == 0 then return {} end
local data = redis.call("hmget", list .. ".msgs", unpack(ids))
local out = {}
for i = 1, #ids do
    out[2 * i - 1] = ids[i]
    out[2 * i] = data[i] or ""
end
return out
"""

#: The most messages one ``FETCH`` takes.
FETCH_LIMIT = 1000

#: The name of the logger Dramatiq's worker threads log a failed message's arguments to.
WORKER_THREAD_LOGGER = "dramatiq.worker.WorkerThread"


# -- the Redis key layout (dispatch.lua's) -----------------------------------------------------------


def heartbeats_key(namespace: str) -> str:
    """The sorted set of every broker's last heartbeat (ms), by broker id."""
    return f"{namespace}:__heartbeats__"


def ack_set(namespace: str, broker_id: str, queue: str) -> str:
    """What the broker ``broker_id`` fetched from ``queue`` and has not acked, nacked or given back."""
    return f"{namespace}:__acks__.{broker_id}.{queue}"


def ack_sets_pattern(namespace: str, queue: str) -> str:
    """A ``SCAN`` pattern matching every broker's ack set for ``queue``."""
    return f"{namespace}:__acks__.*.{queue}"


def queue_key(namespace: str, queue: str) -> str:
    """The list of Redis ids ready to be fetched."""
    return f"{namespace}:{queue}"


def messages_key(namespace: str, queue: str) -> str:
    """The hash of Redis id → encoded message, from enqueue to ack."""
    return f"{namespace}:{queue}.msgs"


def dead_letters_key(namespace: str, queue: str) -> str:
    """The sorted set of a queue's dead-lettered Redis ids, by when they were dead-lettered."""
    return f"{namespace}:{queue}.XQ"


def dead_messages_key(namespace: str, queue: str) -> str:
    """The hash of a queue's dead-lettered Redis ids → encoded message."""
    return f"{namespace}:{queue}.XQ.msgs"


# -- the broker's commands -----------------------------------------------------------------------


def ack(broker: RedisBroker, queue: str, redis_id: str) -> None:
    """Drop ``redis_id`` from this broker's ack set of ``queue`` and its message from Redis."""
    broker.do_ack(queue, redis_id)


def nack(broker: RedisBroker, queue: str, redis_id: str) -> None:
    """Move ``redis_id`` from this broker's ack set of ``queue`` to the queue's dead letters."""
    broker.do_nack(queue, redis_id)


def requeue(broker: RedisBroker, queue: str, *redis_ids: str) -> None:
    """Move ids of this broker's ack set of ``queue`` back to the queue's list."""
    broker.do_requeue(queue, *redis_ids)


def fetcher(broker: RedisBroker) -> Callable[[str, int], list[tuple[str, bytes]]]:
    """``FETCH`` on ``broker``'s client: up to ``count`` messages of a queue into this broker's ack
    set, as (Redis id, data) pairs (data ``b""`` for an id whose message is gone)."""
    script = broker.client.register_script(FETCH)

    def fetch(queue: str, count: int) -> list[tuple[str, bytes]]:
        args: list[Any] = [queue, broker.broker_id, current_millis(), min(count, FETCH_LIMIT)]
        flat = script(keys=[broker.namespace], args=args)
        return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]

    return fetch


def run_maintenance(broker: RedisBroker, queue: str) -> None:
    """dispatch.lua's queue maintenance on ``queue`` now (Dramatiq runs it on a random call): give
    back dead brokers' messages, expire old dead letters; refreshes this broker's heartbeat."""
    args: list[Any] = [
        "maintenance",  # a command the script does nothing else for
        current_millis(),
        queue,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        "1",  # do_maintenance
        broker._max_unpack_size(),
    ]
    broker.scripts["dispatch"](args=args, keys=[broker.namespace])


# -- what the ingress's enqueue writes as RedisBroker.enqueue would ----------------------------------


def maintenance_draw(chance: int) -> int:
    """``RedisBroker._should_do_maintenance("enqueue")``: 1 with ``chance`` in ``MAINTENANCE_SCALE``.

    One ``random()`` instead of ``randint``'s few calls (a tenth of the cost), the same odds.
    """
    return int(random.random() * MAINTENANCE_SCALE < chance)


def known_unpack_size() -> int | None:
    """Dramatiq's Lua unpack size if a blocking broker or ``dramatiq_lua_max_stack`` already gave it."""
    known = RedisBroker._max_unpack_size_val
    if known is not None:
        return int(known)
    return int(DEFAULT_LUA_MAX_STACK) // 2 if DEFAULT_LUA_MAX_STACK else None


def unpack_size(max_stack: int) -> int:
    """The unpack size Dramatiq uses for a Lua stack of ``max_stack`` (``maxstack.lua``'s answer)."""
    return max_stack // 2


# -- a worker's consumer threads -----------------------------------------------------------------


def consumer_threads(worker: Any) -> dict[str, Any]:
    """The worker's consumer thread of each queue (delay queues included), as Dramatiq keeps them."""
    threads: dict[str, Any] = worker.consumers
    return threads


def delay_queue_identity(thread: Any) -> int:
    """Identity of a consumer thread's in-memory delay queue: Dramatiq replaces it (dropping what it
    held) when the thread's consumer loses its connection."""
    return id(thread.delay_queue)


def held_delayed(thread: Any) -> set[str | None]:
    """Redis ids of the delayed messages a consumer thread holds in memory."""
    return {item.message.options.get("redis_message_id") for item in list(thread.delay_queue.queue)}


# -- the boot check --------------------------------------------------------------------------------


def _flat(text: str) -> str:
    return "".join(text.split())


def check_dramatiq_internals(broker: Any = None, worker: Any = None) -> None:
    """Raise ``RuntimeError`` naming what is missing if the Dramatiq internals used here changed."""

    def changed(what: str) -> RuntimeError:
        return RuntimeError(
            f"dramatiq internals changed: {what}; adapters/compat/dramatiq.py was written for dramatiq"
            f" {DRAMATIQ_PINNED} (pinned in pyproject.toml; installed: {version('dramatiq')})"
        )

    attributes: list[tuple[Any, str, str]] = [
        (RedisBroker, "__getattr__", "broker.do_requeue"),
        (RedisBroker, "_dispatch", "broker.do_requeue"),
        (RedisBroker, "_max_unpack_size", "run_maintenance"),
        (RedisBroker, "_max_unpack_size_val", "known_unpack_size"),
        (RedisBroker, "consumer_class", "workers.consumer.Consumer"),
        (redis_broker, "_scripts", "DISPATCH_SCRIPT"),
        (dramatiq_worker, "ConsumerThread", "consumer.delay_queue"),
        (dramatiq_worker, "_WorkQueueItem", "delay_queue items' .message"),
        (Retries, "after_process_message", "DurableRetries"),
    ]
    for owner, name, use in attributes:
        if name not in vars(owner):
            raise changed(f"{getattr(owner, '__qualname__', owner.__name__)} has no {name} (for {use})")
    lua = Path(inspect.getfile(RedisBroker)).with_suffix("") / "dispatch.lua"
    lua_text, script = (lua.read_text() if lua.is_file() else ""), "dramatiq's redis/dispatch.lua"
    consumer_thread, worker_thread = dramatiq_worker.ConsumerThread, dramatiq_worker.WorkerThread
    # Texts that must still say what the code here assumes.
    texts = [
        # The key layout (the ack-set key as FETCH, ack_set and the ops' counts build it).
        (script, lua_text, 'namespace .. ":__acks__." .. worker_id'),
        (script, lua_text, 'acks .. "." .. queue_name'),
        (script, lua_text, 'local heartbeats = namespace .. ":__heartbeats__"'),
        (script, lua_text, 'local queue_full_name = namespace .. ":" .. queue_name'),
        (script, lua_text, 'local queue_messages = queue_full_name .. ".msgs"'),
        (script, lua_text, 'local xqueue_full_name = namespace .. ":" .. queue_canonical_name .. ".XQ"'),
        (script, lua_text, 'local xqueue_messages = xqueue_full_name .. ".msgs"'),
        ("RedisBroker._dispatch", source_of(RedisBroker._dispatch), "self.broker_id"),  # worker_id of the key
        # dispatch's arguments, which the ingress writes itself, and what run_maintenance relies on.
        (
            "RedisBroker._dispatch",
            _flat(source_of(RedisBroker._dispatch)),
            "args=[command,timestamp,queue_name,self.broker_id,self.heartbeat_timeout,self.dead_message_ttl,"
            "self._should_do_maintenance(command),self._max_unpack_size(),*args,]",
        ),
        (script, _flat(lua_text), 'ifcommand=="enqueue"thenlocalmessage_id=ARGS[1]localmessage_data=ARGS[2]'),
        (script, lua_text, "local do_maintenance = ARGV[7]"),
        (script, lua_text, 'if do_maintenance == "1" then'),
        (script, lua_text, "timestamp - heartbeat_timeout"),
        (script, lua_text, 'command == "requeue"'),  # what broker.do_requeue runs
        (
            "RedisBroker._should_do_maintenance",
            source_of(RedisBroker._should_do_maintenance),
            "random.randint(1, MAINTENANCE_SCALE) <= self.maintenance_chance",
        ),
        (
            "RedisBroker.enqueue",
            source_of(RedisBroker.enqueue),
            'self.do_enqueue(queue_name, message.options["redis_message_id"], message.encode())',
        ),
        ("RedisBroker._max_unpack_size", source_of(RedisBroker._max_unpack_size), "cls._max_unpack_size_val // 2"),
        # The worker's consumer keeps the state Dramatiq's starts with (its ack, nack and counts read it).
        ("_RedisConsumer.__init__", source_of(_RedisConsumer.__init__), "self.message_cache = []"),
        ("_RedisConsumer.__init__", source_of(_RedisConsumer.__init__), "self.queued_message_ids = set()"),
        ("_RedisConsumer.__init__", source_of(_RedisConsumer.__init__), "self.misses = 0"),
        (
            "_RedisConsumer.outstanding_message_count",
            source_of(vars(_RedisConsumer)["outstanding_message_count"].fget),
            "len(self.queued_message_ids) + len(self.message_cache)",
        ),
        ("_RedisConsumer.ack", source_of(_RedisConsumer.ack), "raise ConnectionClosed(e)"),
        ("_RedisConsumer.ack", source_of(_RedisConsumer.ack), 'message.options["redis_message_id"]'),
        ("_RedisConsumer.requeue", source_of(_RedisConsumer.requeue), "self.broker.do_requeue(self.queue_name"),
        # The delay queues the stranded-delay requeue compares.
        ("ConsumerThread.run", source_of(consumer_thread.run), "self.delay_queue = PriorityQueue()"),
        ("ConsumerThread.run", source_of(consumer_thread.run), "self.handle_delayed_messages()"),
        ("_WorkQueueItem", source_of(dramatiq_worker._WorkQueueItem), "message: MessageProxy"),
        # A message handed out leaves memory only through the consumer's ack, nack or requeue (each
        # fault builds a new consumer), and an ack Redis refused is tried again.
        ("ConsumerThread.run", source_of(consumer_thread.run), "self.consumer = self.broker.consume("),
        (
            "ConsumerThread.post_process_message",
            source_of(consumer_thread.post_process_message),
            "self.consumer.ack(message)",
        ),
        (
            "ConsumerThread.post_process_message",
            source_of(consumer_thread.post_process_message),
            "self.consumer.nack(message)",
        ),
        ("ConsumerThread.close", source_of(consumer_thread.close), "self.requeue_messages("),
        (
            "WorkerThread.process_message",
            source_of(worker_thread.process_message),
            "self.consumers[message.queue_name].post_process_message(message)",
        ),
        ("Worker.stop", source_of(dramatiq_worker.Worker.stop), ".requeue_messages(messages)"),
        # DurableRetries hands Retries a broker that waits out an outage: Retries must enqueue through it.
        ("Retries.after_process_message", source_of(Retries.after_process_message), "broker.enqueue(message"),
        ("WorkerThread.__init__", source_of(worker_thread.__init__), 'get_logger(__name__, "WorkerThread")'),
    ]
    for where, text, needle in texts:
        if needle not in text:
            raise changed(f"{where} no longer contains {needle!r}")
    if dq_name("q") != f"q{DELAY_SUFFIX}":
        raise changed(f"a delay queue's name is no longer its queue's and {DELAY_SUFFIX!r}")
    if f"{dramatiq_worker.__name__}.WorkerThread" != WORKER_THREAD_LOGGER:
        raise changed(f"the worker threads no longer log to {WORKER_THREAD_LOGGER!r}")
    instances = [(broker, ("broker_id", "namespace", "client", "scripts")), (worker, ("consumers",))]
    for obj, names in instances:
        for name in names:
            if obj is not None and name not in vars(obj):
                raise changed(f"{type(obj).__name__} instances have no {name}")
