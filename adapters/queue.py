"""The queues, what goes into them, and the one way a Redis broker is built.

This module belongs to no side: the ingress and the outbox enqueue with it, the workers consume
with it. Dramatiq's ``get_broker()`` silently creates a global broker on first use; building it
here explicitly (and setting it before any actor is declared) keeps every process on the broker
the settings describe.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dramatiq
import orjson
import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, dq_name, q_name
from dramatiq.errors import ConnectionClosed, DecodeError
from dramatiq.middleware import Middleware, MiddlewareError

from adapters.settings import Settings
from adapters.signing import SIGNATURE, Signer, refusal
from domain.errors import PermanentError

log = logging.getLogger(__name__)

#: Queue of Stripe events; message id = Stripe event id.
STRIPE_EVENTS_QUEUE = "stripe-events"
#: The actor that processes one Stripe event.
STRIPE_EVENTS_ACTOR = "process_stripe_event"

#: Queue of outgoing emails; one message per notification (its dedupe key).
EMAILS_QUEUE = "emails"
#: The actor that sends one notification.
EMAILS_ACTOR = "send_notification"

#: Queue of refund requests; one message per request (the payment's intent id and the request id).
REFUNDS_QUEUE = "refunds"
#: The actor that carries out one refund request.
REFUNDS_ACTOR = "process_refund"

#: Seconds a Redis call may take before it counts as an outage (the ingress answers 503).
REDIS_SOCKET_TIMEOUT = 5.0


class RequireSignatures(Middleware):
    """Refuse to enqueue a message that carries no signature: every message is signed where it is made
    (``Signer.sign``), and a re-enqueue carries the signature it was fetched with. Never signs."""

    def before_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int | None) -> None:
        if not isinstance(message.options.get(SIGNATURE), str):
            raise Unsigned(f"message {message.message_id} was not signed where it was made")


class Unsigned(PermanentError, MiddlewareError):
    """A message that is not the project's: never enqueued, never executed (a ``MiddlewareError``, so
    Dramatiq raises it from a hook instead of logging it and going on)."""


#: Dramatiq's fetch, which also returns each message's Redis id (dispatch.lua's returns the data
#: alone): a message is then told apart from its entry, so a refused one, or one that is not even
#: JSON, is dead-lettered under its own id. KEYS: namespace; ARGV: queue, worker id, now, count.
_FETCH = """
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

#: How many times less often a delay queue's consumer may poll when idle (see ``Consumer``).
DELAY_POLL_FACTOR = 10
#: Messages a yielding queue's consumer holds at most while the process has other work.
YIELDING_PREFETCH = 1
#: Seconds a yielding queue goes on yielding after the process was given other work.
YIELD_WINDOW = 1.0


class Consumer(_RedisConsumer):
    """Dramatiq's Redis consumer, whose thread survives any Redis fault.

    Dramatiq's consumer thread lets only connection errors through quietly: a timeout (Redis
    frozen), or a failure while it gives its held delayed messages back before restarting, kills
    the thread, and that queue is never consumed again until the process restarts. Both become
    ``ConnectionClosed`` here; messages it could not give back stay in this process's ack set,
    named in ``broker.stranded`` for ``workers.middleware.stranded`` to requeue once Redis answers.

    A delay queue's consumer backs off to ``DELAY_POLL_FACTOR`` times the others' cap: it holds
    retries waiting out backoffs of seconds, and fetching them sooner only means holding them
    longer. Its thread moves due retries to their queue once per poll, so a retry is late by at
    most that cap (200 ms at ``WORKER_POLL_MS=20``), and an idle process polls Redis half as often.

    A queue the broker names as yielding (the emails) fetches no more than ``YIELDING_PREFETCH``
    messages at a time while this process holds messages of another queue (events, refunds), or
    was given one less than ``YIELD_WINDOW`` ago (so the short gaps between a burst's events do
    not let the emails back in): priority alone only orders the messages a process holds, so a
    burst's emails would otherwise fill the threads and take the CPU its activations wait for.
    Otherwise it fetches its full prefetch.

    ``handed_out`` names, by Redis id, the messages given to the worker and not yet acked, nacked
    or given back: with ``message_cache`` it is all this process holds of its ack set for the
    queue (``workers.middleware.unheld`` gives back the rest). A queue's consumer replaced after a
    fault takes over the old one's set (its messages wait in the work queue or run, and are acked
    through the new consumer), except a delay queue's: Dramatiq drops or gives back what its
    thread held before building a new consumer.
    """

    #: Milliseconds: the cap of this consumer's back-off when a poll finds nothing.
    timeout: int

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        self.delayed = queue_name == dq_name(q_name(queue_name))
        if self.delayed:
            timeout *= DELAY_POLL_FACTOR
        self.yields = queue_name in broker.yielding
        super().__init__(broker, queue_name, prefetch, timeout)
        kept: set[str] = set() if self.delayed else broker.handed_out.get(queue_name, set())
        self.handed_out = broker.handed_out[queue_name] = kept
        broker.consumers[queue_name] = self  # replaces the one a restart after a fault left

    @property
    def prefetch(self) -> int:
        """Read by Dramatiq's ``__next__`` before each fetch: how many messages may be held."""
        if self.yields and (time.monotonic() < self.broker.busy_until or self._others_held()):
            return min(self._prefetch, YIELDING_PREFETCH)
        return self._prefetch

    @prefetch.setter
    def prefetch(self, value: int) -> None:
        self._prefetch = value

    def _others_held(self) -> bool:
        return any(c.outstanding_message_count for c in self.broker.consumers.values() if c.urgent)

    @property
    def urgent(self) -> bool:
        """Whether the messages it holds make the yielding queues wait (a delay queue's are only
        waiting out their backoff)."""
        return not (self.yields or self.delayed)

    def held(self) -> set[str]:
        """The Redis ids of the messages of this queue this process holds in memory."""
        return {redis_id for redis_id, _ in list(self.message_cache)} | set(self.handed_out)

    def ack(self, message: Any) -> None:
        self._settle(super().ack, message)

    def nack(self, message: Any) -> None:
        self._settle(super().nack, message)

    def _settle(self, call: Callable[[Any], None], message: Any) -> None:
        """Ack or nack ``message``; it stays held only while Dramatiq tries again (``ConnectionClosed``)."""
        try:
            call(message)
        except ConnectionClosed:
            raise
        except BaseException:
            self.handed_out.discard(message.options["redis_message_id"])
            raise
        self.handed_out.discard(message.options["redis_message_id"])

    def requeue(self, messages: Any) -> None:
        given = list(messages)
        try:
            super().requeue(given)
        except redis.RedisError as error:
            self.broker.stranded.add(self.queue_name)
            raise ConnectionClosed(error) from None
        finally:  # no longer in memory either way
            self.handed_out.difference_update(m.options["redis_message_id"] for m in given)

    def __next__(self) -> Any:
        """Dramatiq's ``_RedisConsumer.__next__``, with each message let in only through ``_admit``."""
        try:
            while True:
                if self.message_cache:
                    redis_id, data = self.message_cache.pop(0)
                    self.misses = 0
                    message = self._admit(redis_id, data)
                    if message is None:
                        continue
                    self.queued_message_ids.add(message.message_id)
                    self.handed_out.add(redis_id)
                    if self.urgent:
                        self.broker.busy_until = time.monotonic() + YIELD_WINDOW
                    return MessageProxy(message)
                fetched: list[tuple[str, bytes]] = []
                if self.outstanding_message_count < self.prefetch:
                    fetched = self.broker.fetch(self.queue_name, self.prefetch - self.outstanding_message_count)
                    self.message_cache = fetched
                if not fetched:
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None
        except (redis.ConnectionError, redis.TimeoutError) as error:  # Dramatiq converts only the first
            raise ConnectionClosed(error) from None

    def _admit(self, redis_id: str, data: bytes) -> Message[Any] | None:
        """The message stored as ``redis_id``, or None when it must not run: then it is dead-lettered
        under that id, recorded and logged here, before the worker sees it (so before its ``eta`` is
        honoured, its actor looked up or anything else in it read)."""
        if not data:  # an id whose message is gone (Dramatiq skips these too): nothing to keep
            self.broker.do_ack(self.queue_name, redis_id)
            return None
        try:
            message: Message[Any] = Message.decode(data)
        except DecodeError as error:
            self._refuse(redis_id, data, None, f"message could not be decoded: {type(error.error).__name__}")
            return None
        actors = self.broker.queue_actors.get(q_name(self.queue_name), ())
        reason = refusal(self.broker.signer, message, queue=self.queue_name, redis_id=redis_id, actors=actors)
        if reason is None:
            return message
        self._refuse(redis_id, data, message, reason)
        return None

    def _refuse(self, redis_id: str, data: bytes, message: Message[Any] | None, reason: str) -> None:
        self.broker.do_nack(self.queue_name, redis_id)
        message_id = message.message_id if message is not None and isinstance(message.message_id, str) else redis_id
        log.error("message refused: %s", reason, extra={"message_id": message_id, "queue": self.queue_name})
        self.broker.on_refused(Refused(self.queue_name, redis_id, data, message, reason))


@dataclasses.dataclass(frozen=True)
class Refused:
    """A message a worker refused to run, dead-lettered under ``redis_id`` (``message`` None: not decodable)."""

    queue: str
    redis_id: str
    data: bytes
    message: Message[Any] | None
    reason: str


class Broker(RedisBroker):
    """Dramatiq's Redis broker: its consumers survive Redis faults and let ``yielding`` queues
    wait while others have work (see ``Consumer``), and ``close`` really closes its connections
    (Dramatiq's does nothing)."""

    def __init__(self, signer: Signer, yielding: frozenset[str] = frozenset(), **options: Any) -> None:
        super().__init__(**options)
        self.signer = signer
        #: Told of each message a consumer refused (the worker records it in ``job_failures``).
        self.on_refused: Callable[[Refused], None] = lambda refused: None
        self._fetch = self.client.register_script(_FETCH)
        #: Queues whose consumer could not give its delayed messages back (see ``Consumer``).
        self.stranded: set[str] = set()
        self.yielding = yielding
        #: The live consumer of each queue in this process (each holds that queue's messages).
        self.consumers: dict[str, Consumer] = {}
        #: Each queue's ``Consumer.handed_out``, kept across its consumer's restarts.
        self.handed_out: dict[str, set[str]] = {}
        #: ``time.monotonic()`` until which the yielding queues keep yielding (see ``Consumer``).
        self.busy_until = 0.0

    @property
    def consumer_class(self) -> type[Consumer]:
        return Consumer

    @property
    def queue_actors(self) -> dict[str, frozenset[str]]:
        """The names of the actors declared on each queue: the only ones its messages may name."""
        names: dict[str, set[str]] = {}
        for actor in self.actors.values():
            names.setdefault(actor.queue_name, set()).add(actor.actor_name)
        return {queue: frozenset(actors) for queue, actors in names.items()}

    def fetch(self, queue_name: str, count: int) -> list[tuple[str, bytes]]:
        """Take up to ``count`` messages of ``queue_name`` into this worker's ack set: (Redis id, data) each."""
        flat = self._fetch(keys=[self.namespace], args=[queue_name, self.broker_id, current_millis(), min(count, 1000)])
        return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]

    def close(self) -> None:
        super().close()
        self.client.connection_pool.disconnect()


def build_broker(settings: Settings, middleware: Sequence[Middleware] = ()) -> Broker:
    """A Redis broker that enqueues only signed messages, with ``middleware`` after (an enqueuer needs none)."""
    broker = Broker(
        signer=Signer(settings.queue_signing_keys),
        yielding=frozenset({EMAILS_QUEUE}),
        url=settings.redis_url,
        middleware=[RequireSignatures(), *middleware],
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
    )
    broker.declare_queue(STRIPE_EVENTS_QUEUE)
    broker.declare_queue(EMAILS_QUEUE)
    broker.declare_queue(REFUNDS_QUEUE)
    dramatiq.set_broker(broker)
    return broker


#: Keys whose values are secrets (a PaymentIntent's client secret lets anyone confirm it).
SECRET_KEYS = frozenset({"client_secret"})


def redact(value: Any) -> Any:
    """A copy of a Stripe payload without secrets, so queues, logs and MongoDB never hold them.

    The copy may share the parts that hold no secret with ``value`` (messages are encoded at once).
    """
    quick = _redact_object(value)
    try:
        # A key is written by orjson as ``"client_secret"`` whatever escapes the payload used.
        dumped = orjson.dumps(quick)
        if not any(b'"%s"' % key.encode() in dumped for key in SECRET_KEYS):
            return quick
    except TypeError:
        pass
    return _redact_all(value)


def _redact_object(value: Any) -> Any:
    """``value`` without the secrets of an event's ``data.object`` (where Stripe puts them), copying that path only."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
        return value
    data = value["data"]
    if not isinstance(data.get("object"), dict):
        return value
    obj = dict(data["object"])  # a C-level copy, then the secrets out: same keys, same order
    for key in SECRET_KEYS:
        obj.pop(key, None)
    return {**value, "data": {**data, "object": obj}}


def _redact_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_all(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [_redact_all(v) for v in value]
    return value


def event_message(event: dict[str, Any]) -> Message[Any]:
    """The message for one Stripe event; its id is the event's id (CONTRACT §3).

    The id does not dedupe (each enqueue gets its own Redis id); the worker's inbox does.
    Secrets are stripped here, the one door every event goes through into the queue.
    """
    return Message(
        queue_name=STRIPE_EVENTS_QUEUE,
        actor_name=STRIPE_EVENTS_ACTOR,
        args=(redact(event),),
        kwargs={},
        options={},
        message_id=event["id"],
    )


def notification_message(*keys: str) -> Message[Any]:
    """The message that asks the emails actor to send the notifications with these dedupe keys.

    One step's emails (a welcome and the specialist's notice) travel together: one enqueue, one
    fetch and one ack for all of them; each is still claimed, sent and marked on its own.
    """
    return Message(queue_name=EMAILS_QUEUE, actor_name=EMAILS_ACTOR, args=keys, kwargs={}, options={})


def refund_message(intent_id: str, request_id: str) -> Message[Any]:
    """The message that asks the refunds actor to carry out one refund request."""
    return Message(
        queue_name=REFUNDS_QUEUE, actor_name=REFUNDS_ACTOR, args=(intent_id, request_id), kwargs={}, options={}
    )


def send(broker: Broker, message: Message[Any]) -> Message[Any]:
    """Sign and enqueue a message this process has just made from data it trusts."""
    return broker.enqueue(broker.signer.sign(message))


class BrokerJobs:
    """``Jobs`` on a broker: new messages, signed here."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def enqueue_event(self, payload: Mapping[str, Any]) -> None:
        send(self.broker, event_message(dict(payload)))

    def enqueue_refund(self, intent_id: str, request_id: str) -> None:
        send(self.broker, refund_message(intent_id, request_id))
