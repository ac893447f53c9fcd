"""Give back delayed messages that a Redis outage strands in this process (DESIGN §3.2).

When a consumer loses its Redis connection, Dramatiq drops the delayed messages it held in
memory (retries waiting for their backoff), while Redis keeps them in this process's ack set.
The process keeps heartbeating, so queue maintenance never returns them: they wait until the
process exits (Dramatiq issue #527). Dramatiq replaces a consumer's delay queue when that
happens, and ``adapters.queue.Consumer`` names in ``broker.stranded`` a queue whose held messages
it could not give back on another fault, so this middleware watches for both; then every delayed
message in this process's ack set for that queue that the consumer does not hold is requeued
(once Redis answers). A message promoted twice in a race is processed twice, which the actors
tolerate.

All of that leans on Dramatiq internals (pinned in pyproject.toml): ``check_dramatiq_internals``
stops the worker at boot if they changed, instead of letting the watcher fail unseen.
"""

from __future__ import annotations

import inspect
import logging
import threading
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from dramatiq import Broker
from dramatiq import worker as dramatiq_worker
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.middleware import Middleware, Retries

log = logging.getLogger(__name__)

#: Seconds between checks (in memory; Redis is asked only after a consumer lost its connection).
CHECK_INTERVAL = 0.5

#: The Dramatiq release whose internals this module and ``retries.py`` were written against.
DRAMATIQ_PINNED = "2.2.1"


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def check_dramatiq_internals(broker: Any = None, worker: Any = None) -> None:
    """Raise ``RuntimeError`` naming what is missing if the Dramatiq internals relied on here changed."""

    def changed(what: str) -> RuntimeError:
        return RuntimeError(
            f"dramatiq internals changed: {what}; stranded.py was written for dramatiq {DRAMATIQ_PINNED}"
            f" (pinned in pyproject.toml; installed: {version('dramatiq')})"
        )

    attributes: list[tuple[Any, str, str]] = [
        (RedisBroker, "__getattr__", "broker.do_requeue"),
        (RedisBroker, "_dispatch", "broker.do_requeue"),
        (RedisBroker, "consumer_class", "adapters.queue.Consumer"),
        (dramatiq_worker, "ConsumerThread", "consumer.delay_queue"),
        (dramatiq_worker, "_WorkQueueItem", "delay_queue items' .message"),
        (Retries, "after_process_message", "retries.py's DurableRetries"),
    ]
    for owner, name, use in attributes:
        if name not in vars(owner):
            raise changed(f"{getattr(owner, '__qualname__', owner.__name__)} has no {name} (for {use})")
    # Texts that must still say what the code assumes (the Lua script builds the ack-set key).
    lua = Path(inspect.getfile(RedisBroker)).with_suffix("") / "dispatch.lua"
    lua_text, script = (lua.read_text() if lua.is_file() else ""), "dramatiq's redis/dispatch.lua"
    texts = [
        (script, lua_text, 'namespace .. ":__acks__." .. worker_id'),  # the ack-set key format
        (script, lua_text, 'acks .. "." .. queue_name'),
        (script, lua_text, 'command == "requeue"'),  # what broker.do_requeue runs
        ("RedisBroker._dispatch", _source(RedisBroker._dispatch), "self.broker_id"),  # worker_id of the key
        ("ConsumerThread.run", _source(dramatiq_worker.ConsumerThread.run), "self.delay_queue = PriorityQueue()"),
        ("_WorkQueueItem", _source(dramatiq_worker._WorkQueueItem), "message: MessageProxy"),
        ("Retries.after_process_message", _source(Retries.after_process_message), "broker.enqueue(message"),
        # adapters.queue.Consumer fetches with its own script, keyed as dispatch.lua keys its data,
        # and keeps the state Dramatiq's consumer starts with (its ack, nack and counts read it).
        (script, lua_text, 'local queue_messages = queue_full_name .. ".msgs"'),
        ("_RedisConsumer.__init__", _source(_RedisConsumer.__init__), "self.message_cache = []"),
        ("_RedisConsumer.__init__", _source(_RedisConsumer.__init__), "self.queued_message_ids = set()"),
        (
            "_RedisConsumer.outstanding_message_count",
            _source(vars(_RedisConsumer)["outstanding_message_count"].fget),
            "len(self.queued_message_ids) + len(self.message_cache)",
        ),
        ("ConsumerThread.run", _source(dramatiq_worker.ConsumerThread.run), "self.handle_delayed_messages()"),
        # unheld.py: a message handed out leaves memory only through the consumer's ack, nack or
        # requeue (each fault builds a new consumer), and an ack Redis refused is tried again.
        ("ConsumerThread.run", _source(dramatiq_worker.ConsumerThread.run), "self.consumer = self.broker.consume("),
        (
            "ConsumerThread.post_process_message",
            _source(dramatiq_worker.ConsumerThread.post_process_message),
            "self.consumer.ack(message)",
        ),
        (
            "ConsumerThread.post_process_message",
            _source(dramatiq_worker.ConsumerThread.post_process_message),
            "self.consumer.nack(message)",
        ),
        ("ConsumerThread.close", _source(dramatiq_worker.ConsumerThread.close), "self.requeue_messages("),
        (
            "WorkerThread.process_message",
            _source(dramatiq_worker.WorkerThread.process_message),
            "self.consumers[message.queue_name].post_process_message(message)",
        ),
        ("Worker.stop", _source(dramatiq_worker.Worker.stop), ".requeue_messages(messages)"),
        ("_RedisConsumer.ack", _source(_RedisConsumer.ack), "raise ConnectionClosed(e)"),
        ("_RedisConsumer.ack", _source(_RedisConsumer.ack), 'message.options["redis_message_id"]'),
    ]
    for where, text, needle in texts:
        if needle not in text:
            raise changed(f"{where} no longer contains {needle!r}")
    instances = [(broker, ("broker_id", "namespace", "client", "scripts")), (worker, ("consumers",))]
    for obj, names in instances:
        for name in names:
            if obj is not None and name not in vars(obj):
                raise changed(f"{type(obj).__name__} instances have no {name}")


class RequeueStrandedDelays(Middleware):
    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        check_dramatiq_internals(broker, worker)
        self._thread = threading.Thread(target=self._watch, args=(broker, worker), name="stranded-delays", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()

    def _watch(self, broker: Any, worker: Any) -> None:
        """Run rounds until shutdown; a round that fails unexpectedly is logged and the next one runs."""
        seen: dict[str, int] | None = None
        while True:
            try:
                seen = self._round(broker, worker, seen)
            except Exception:
                log.exception("RequeueStrandedDelays: a check for stranded delays failed; trying again next round")
            if self._stop.wait(self.interval):
                return

    def _round(self, broker: Any, worker: Any, seen: dict[str, int] | None) -> dict[str, int]:
        """One check: requeue for each replaced delay queue; returns the queues to compare with next."""
        current = self._delay_queues(worker)
        if seen is None:
            return current
        stranded: set[str] = getattr(broker, "stranded", set())
        for queue_name, queue_id in current.items():
            named = queue_name in stranded
            if seen.get(queue_name, queue_id) == queue_id and not named:
                continue
            try:
                stranded.discard(queue_name)
                self.requeue(broker, worker.consumers[queue_name], queue_name)
            except redis.RedisError as error:  # still down: try again next round
                log.warning("stranded delays not requeued yet", extra={"queue": queue_name, "error": repr(error)})
                current[queue_name] = seen.get(queue_name, queue_id)
                if named:
                    stranded.add(queue_name)
        return current

    @staticmethod
    def _delay_queues(worker: Any) -> dict[str, int]:
        """Identity of each delay consumer's in-memory queue; a new one means the old was dropped."""
        return {name: id(c.delay_queue) for name, c in list(worker.consumers.items()) if name.endswith(".DQ")}

    def requeue(self, broker: Any, consumer: Any, queue_name: str) -> int:
        """Requeue this process's delayed messages of ``queue_name`` that the consumer does not hold."""
        held = {item.message.options.get("redis_message_id") for item in list(consumer.delay_queue.queue)}
        acks = f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"
        stranded = [m.decode() for m in broker.client.smembers(acks) if m.decode() not in held]
        if stranded:
            broker.do_requeue(queue_name, *stranded)
            log.warning("requeued delayed messages stranded by a Redis outage", extra={"queue": queue_name})
        return len(stranded)
