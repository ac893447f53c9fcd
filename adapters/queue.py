"""The queues, what goes into them, and the one way a Redis broker is built.

This module belongs to no side: the ingress, ops and the outbox enqueue with it; a worker process
builds its broker here too, as ``workers.broker.WorkerBroker``, which also consumes. Dramatiq's
``get_broker()`` silently creates a global broker on first use; building it here explicitly (and
setting it before any actor is declared) keeps every process on the broker the settings describe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import dramatiq
import orjson
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware, MiddlewareError

from adapters.settings import Settings
from adapters.signing import SIGNATURE, Signer
from domain.errors import PermanentError

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


@dataclasses.dataclass(frozen=True)
class Refused:
    """A message a worker refused to run, dead-lettered under ``redis_id`` (``message`` None: not decodable)."""

    queue: str
    redis_id: str
    data: bytes
    message: Message[Any] | None
    reason: str


class Broker(RedisBroker):
    """Dramatiq's Redis broker, which enqueues only signed messages (``RequireSignatures``) and whose
    ``close`` really closes its connections (Dramatiq's does nothing).

    It does not consume: only a worker's broker (``workers.broker.WorkerBroker``) does, through the
    consumer that lets in only signed messages, so no broker built here can run what nobody signed.
    """

    def __init__(self, signer: Signer, **options: Any) -> None:
        super().__init__(**options)
        self.signer = signer

    @property
    def consumer_class(self) -> type[Any]:
        raise TypeError(f"{type(self).__name__} only enqueues: a worker consumes through workers.broker.WorkerBroker")

    def close(self) -> None:
        super().close()
        self.client.connection_pool.disconnect()


def build_broker(settings: Settings, middleware: Sequence[Middleware] = (), kind: type[Broker] = Broker) -> Broker:
    """A Redis broker (a ``kind``) that enqueues only signed messages, with ``middleware`` after (an
    enqueuer needs none)."""
    broker = kind(
        signer=Signer(settings.queue_signing_keys),
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


def event_message(event: dict[str, Any], source: str | None = None) -> Message[Any]:
    """The message for one Stripe event; its id is the event's id (docs/api.md#the-webhook).

    The id does not dedupe (each enqueue gets its own Redis id); the worker's inbox does.
    Secrets are stripped here, the one door every event goes through into the queue.
    ``source`` (``reconcile``) travels as a keyword argument, so it is signed with the event; a
    webhook's message carries none, as every message did before sources were recorded.
    """
    return Message(
        queue_name=STRIPE_EVENTS_QUEUE,
        actor_name=STRIPE_EVENTS_ACTOR,
        args=(redact(event),),
        kwargs={"source": source} if source else {},
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

    def enqueue_event(self, payload: Mapping[str, Any], source: str | None = None) -> None:
        send(self.broker, event_message(dict(payload), source))

    def enqueue_refund(self, intent_id: str, request_id: str) -> None:
        send(self.broker, refund_message(intent_id, request_id))
