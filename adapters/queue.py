"""The queues, what goes into them, and the one way a Redis broker is built.

This module belongs to no side: the ingress and the outbox enqueue with it, the workers consume
with it. Dramatiq's ``get_broker()`` silently creates a global broker on first use; building it
here explicitly (and setting it before any actor is declared) keeps every process on the broker
the settings describe.
"""

from __future__ import annotations

import functools
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dramatiq
import orjson
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import dq_name, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

from adapters.settings import Settings

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


#: The message option that carries the message's HMAC.
SIGNATURE = "signature"


def signature(key: bytes, actor_name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """HMAC-SHA256 over the actor and its arguments (not the broker's ids or timestamps, which a retry renews)."""
    mac = _keyed(key).copy()
    mac.update(signed_form([actor_name, list(args), kwargs]))
    return mac.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with ``key``, for ``signature`` to copy: ``hmac.digest`` has OpenSSL look the
    algorithm up and key it anew for every message (a copy saves about 0.4 µs of its 3.2 on a 3 KB event)."""
    return hmac.new(key, digestmod="sha256")


def signed_form(value: Any) -> bytes:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8.

    orjson writes these very bytes about 15 times faster (same key order, same escapes), except
    for floats under 1e-4, which it spells ``1e-7`` or ``0.00001`` where ``json`` writes ``1e-07``
    or ``1e-05``: output holding ``e-`` or ``0.0000`` anywhere (in a string too) is made by
    ``json`` itself, as is anything orjson refuses (integers past 64 bits, lone surrogates). So
    signer and verifier, old and new, always hash the same bytes (tests/unit/test_fast_paths.py).
    """
    try:
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if not _contains(fast, b"e-", b"-") and not _contains(fast, b"0.0000", b"."):
            return fast
    except TypeError:
        pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


#: Occurrences of the rare byte ``_contains`` checks one by one before it leaves the rest to ``in``.
_FEW = 16


def _contains(data: bytes, pattern: bytes, rare: bytes) -> bool:
    """``pattern in data``, found from the occurrences of ``rare`` (one byte of ``pattern``) in ``data``.

    ``in`` crawls through JSON text for ``e-`` or ``0.0000``: their other bytes (``e``, ``0``) are
    everywhere, so its search can seldom skip ahead. JSON text holds few ``-`` and ``.``, which a
    one-byte search finds at memory speed (about a fifth of the cost on a 3 KB event); past
    ``_FEW`` of them ``in`` is the cheaper search again.
    """
    offset = pattern.index(rare)
    at = data.find(rare, offset)
    for _ in range(_FEW):
        if at < 0:
            return False
        if data.startswith(pattern, at - offset):
            return True
        at = data.find(rare, at + 1)
    return pattern in data


def refusal(key: bytes, message: Message[Any] | Any) -> str | None:
    """Why ``message`` must not be acted on (no signature, or one that does not verify), or None."""
    given = message.options.get(SIGNATURE)
    if not isinstance(given, str):
        return "message carries no signature: not enqueued by this service"
    if not hmac.compare_digest(given, signature(key, message.actor_name, message.args, message.kwargs)):
        return "message signature does not verify: changed after it was enqueued, or another key"
    return None


class SignMessages(Middleware):
    """Sign every message this process enqueues, so a worker acts only on what the project enqueued.

    Redis is not a trust boundary (DESIGN §5): the key never goes to Redis, and a message written
    there by anyone else carries no valid signature (``workers.middleware.authenticity``).
    """

    def __init__(self, key: bytes) -> None:
        self.key = key

    def before_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int | None) -> None:
        message.options[SIGNATURE] = signature(self.key, message.actor_name, message.args, message.kwargs)


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
    """

    #: Milliseconds: the cap of this consumer's back-off when a poll finds nothing.
    timeout: int

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        self.delayed = queue_name == dq_name(q_name(queue_name))
        if self.delayed:
            timeout *= DELAY_POLL_FACTOR
        self.yields = queue_name in broker.yielding
        super().__init__(broker, queue_name, prefetch, timeout)
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

    def requeue(self, messages: Any) -> None:
        try:
            super().requeue(messages)
        except redis.RedisError as error:
            self.broker.stranded.add(self.queue_name)
            raise ConnectionClosed(error) from None

    def __next__(self) -> Any:
        try:
            message = super().__next__()
        except redis.TimeoutError as error:  # Dramatiq converts only redis.ConnectionError
            raise ConnectionClosed(error) from None
        if message is not None and self.urgent:
            self.broker.busy_until = time.monotonic() + YIELD_WINDOW
        return message


class Broker(RedisBroker):
    """Dramatiq's Redis broker: its consumers survive Redis faults and let ``yielding`` queues
    wait while others have work (see ``Consumer``), and ``close`` really closes its connections
    (Dramatiq's does nothing)."""

    def __init__(self, yielding: frozenset[str] = frozenset(), **options: Any) -> None:
        super().__init__(**options)
        #: Queues whose consumer could not give its delayed messages back (see ``Consumer``).
        self.stranded: set[str] = set()
        self.yielding = yielding
        #: The live consumer of each queue in this process (each holds that queue's messages).
        self.consumers: dict[str, Consumer] = {}
        #: ``time.monotonic()`` until which the yielding queues keep yielding (see ``Consumer``).
        self.busy_until = 0.0

    @property
    def consumer_class(self) -> type[Consumer]:
        return Consumer

    def close(self) -> None:
        super().close()
        self.client.connection_pool.disconnect()


def build_broker(settings: Settings, middleware: Sequence[Middleware] = ()) -> RedisBroker:
    """A Redis broker that signs what it enqueues, with ``middleware`` after (an enqueuer needs none)."""
    broker = Broker(
        yielding=frozenset({EMAILS_QUEUE}),
        url=settings.redis_url,
        middleware=[SignMessages(settings.queue_signing_key), *middleware],
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


class BrokerJobs:
    """``Jobs`` on a broker: every message goes through the broker's signer."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def enqueue_event(self, payload: Mapping[str, Any]) -> None:
        self.broker.enqueue(event_message(dict(payload)))

    def enqueue_refund(self, intent_id: str, request_id: str) -> None:
        self.broker.enqueue(refund_message(intent_id, request_id))
