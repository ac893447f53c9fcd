"""The webhook's batched asyncio enqueue (adapters/async_queue.py) writes what ``broker.enqueue`` writes.

Each request is acknowledged only once its own message is in Redis; a failed round trip fails
every request of its batch (503 at the route); the worker verifies and processes what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from dramatiq import Message
from starlette.applications import Starlette

from adapters.async_queue import AsyncEnqueuer, build_enqueuer
from adapters.queue import STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE, Broker, event_message
from adapters.settings import Settings
from adapters.signing import SIGNATURE, refusal
from devstack.send_event import seed_payment
from ingress.composition import create_app
from payments_ops import events
from tests.support import queued_messages, signed
from workers.composition import build_worker

SECRET = "whsec_integration"
MESSAGES = f"dramatiq:{STRIPE_EVENTS_QUEUE}.msgs"


def succeeded(metadata: dict[str, str] | None = None, intent_id: str | None = None) -> dict[str, Any]:
    intent_id = intent_id or events.new_id("pi")
    intent = events.payment_intent("payment_intent.succeeded", intent_id, 49900, "INR", metadata or {})
    return events.event("payment_intent.succeeded", intent)


class CountingEnqueuer(AsyncEnqueuer):
    """Records each round trip's commands, so a test can see how requests were batched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.round_trips: list[list[str]] = []

    async def _pipeline(self, commands: list[tuple[bytes, ...]]) -> list[Any]:
        # Each command is framed as b"*<n>\r\n$<len>\r\n<NAME>\r\n…" (in parts): keep the names.
        self.round_trips.append([b"".join(command).split(b"\r\n")[2].decode() for command in commands])
        return await super()._pipeline(commands)


def test_concurrent_enqueues_share_a_round_trip_and_each_returns_once_its_message_is_in_redis(
    settings: Settings, broker: Broker
) -> None:
    """Twenty enqueues at once: one pipeline of EVALSHA; each returns only after Redis holds its message."""
    enqueuer = CountingEnqueuer(broker, settings.redis_url)
    seen_on_return: list[bool] = []

    async def one(event: dict[str, Any]) -> Message[Any]:
        message = await enqueuer.enqueue(event_message(event))
        seen_on_return.append(bool(broker.client.hexists(MESSAGES, message.options["redis_message_id"])))
        return message

    async def run() -> list[Message[Any]]:
        try:
            return await asyncio.gather(*(one(succeeded()) for _ in range(20)))
        finally:
            await enqueuer.aclose()

    messages = asyncio.run(run())
    assert seen_on_return == [True] * 20
    evalsha = [trip for trip in enqueuer.round_trips if "EVALSHA" in trip]
    assert len(evalsha) < 20 and sum(len(trip) for trip in evalsha) >= 20
    stored = {m.message_id: m for m in queued_messages(broker.client, STRIPE_EVENTS_QUEUE)}
    assert sorted(stored) == sorted(m.message_id for m in messages)
    # Dramatiq's own keys: the queue lists the Redis ids, the broker's heartbeat is recorded.
    redis_ids: list[bytes] = broker.client.lrange(f"dramatiq:{STRIPE_EVENTS_QUEUE}", 0, -1)  # type: ignore[assignment]
    listed = {raw.decode() for raw in redis_ids}
    assert listed == {m.options["redis_message_id"] for m in messages}
    assert broker.client.zscore("dramatiq:__heartbeats__", broker.broker_id) is not None


def test_messages_are_signed_redacted_and_verify_on_the_worker_side(settings: Settings, broker: Broker) -> None:
    """What the async path writes decodes as Dramatiq's message, without the client secret, and verifies."""
    event = succeeded()
    enqueuer = build_enqueuer(settings, broker)

    async def run() -> None:
        try:
            await enqueuer.enqueue(event_message(event))
        finally:
            await enqueuer.aclose()

    asyncio.run(run())
    [message] = queued_messages(broker.client, STRIPE_EVENTS_QUEUE)
    assert (message.message_id, message.actor_name, message.queue_name) == (
        event["id"],
        STRIPE_EVENTS_ACTOR,
        STRIPE_EVENTS_QUEUE,
    )
    del event["data"]["object"]["client_secret"]
    assert message.args == (event,) and len(message.options[SIGNATURE]) == 64
    assert broker.signer.verifies(message)


def test_the_script_is_loaded_again_after_redis_forgot_it(settings: Settings, broker: Broker) -> None:
    """SCRIPT FLUSH (as after a Redis restart): NOSCRIPT commands are sent again after SCRIPT LOAD."""
    enqueuer = CountingEnqueuer(broker, settings.redis_url)

    async def run() -> None:
        try:
            await enqueuer.enqueue(event_message(succeeded()))
            broker.client.script_flush()
            await asyncio.gather(*(enqueuer.enqueue(event_message(succeeded())) for _ in range(3)))
        finally:
            await enqueuer.aclose()

    asyncio.run(run())
    assert broker.client.hlen(MESSAGES) == 4
    assert ["SCRIPT"] in enqueuer.round_trips


@contextlib.asynccontextmanager
async def fake_redis(silent: bool) -> AsyncIterator[str]:
    """A server that reads what it is sent, then hangs up, or (``silent``) keeps the connection and says nothing."""
    held: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        held.append(writer)
        if not silent:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("silent", "error"), [(False, redis.ConnectionError), (True, redis.TimeoutError)])
def test_a_failed_round_trip_fails_every_request_of_its_batch(
    settings: Settings, broker: Broker, silent: bool, error: type[Exception]
) -> None:
    """Redis hanging up mid-batch, or not answering within the timeout: every enqueue of the batch raises."""

    async def run() -> list[Any]:
        async with fake_redis(silent=silent) as url:
            enqueuer = AsyncEnqueuer(broker, url, timeout=0.5)
            try:
                outcomes: list[Any] = await asyncio.gather(
                    *(enqueuer.enqueue(event_message(succeeded())) for _ in range(5)), return_exceptions=True
                )
                return outcomes
            finally:
                await enqueuer.aclose()

    outcomes = asyncio.run(run())
    assert [type(o) for o in outcomes] == [outcomes[0].__class__] * 5 and isinstance(outcomes[0], error)


def test_a_connection_broken_while_the_replies_are_read_fails_the_batch_with_a_redis_error(
    settings: Settings, broker: Broker
) -> None:
    """A reset between the write and the replies is an outage for every request of the batch (503 at the route)."""

    async def reset(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionResetError(104, "Connection reset by peer")

    async def run() -> list[Any]:
        enqueuer = AsyncEnqueuer(broker, settings.redis_url)
        try:
            await enqueuer.enqueue(event_message(succeeded()))  # connected, script loaded
            enqueuer._connection._parser.read_response = reset
            outcomes: list[Any] = await asyncio.gather(
                *(enqueuer.enqueue(event_message(succeeded())) for _ in range(3)), return_exceptions=True
            )
            return outcomes
        finally:
            await enqueuer.aclose()

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, redis.ConnectionError) for outcome in outcomes), outcomes
    assert {type(outcome.__cause__) for outcome in outcomes} == {ConnectionResetError}


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on ``app`` in this event loop, inside the app's lifespan (which closes the enqueuer)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
            yield client


def test_concurrent_deliveries_during_an_outage_all_answer_503(settings: Settings, broker: Broker, db: Any) -> None:
    """Through the route: each delivery of a failed batch is 503 broker_unavailable with Retry-After, none queued."""

    async def run() -> list[httpx.Response]:
        async with fake_redis(silent=False) as url:
            app = create_app(dataclasses.replace(settings, redis_url=url), broker=broker, db=db)
            async with served(app) as client:
                bodies = [signed(succeeded(), SECRET) for _ in range(5)]
                return await asyncio.gather(
                    *(client.post("/api/webhooks/stripe", content=b, headers=h) for b, h in bodies)
                )

    responses = asyncio.run(run())
    assert [(r.status_code, r.headers["retry-after"]) for r in responses] == [(503, "5")] * 5
    assert {r.json()["error"]["code"] for r in responses} == {"broker_unavailable"}
    assert broker.client.hlen(MESSAGES) == 0


def test_a_delivery_through_the_route_is_verified_and_processed_by_the_worker_side(
    settings: Settings, broker: Broker, db: Any
) -> None:
    """What the route wrote passes the worker's signature check and its actor processes it.

    The actor runs here, in this thread, as the worker's thread would run it: a Dramatiq worker's
    threads formatting tracebacks while pytest rewrites an import trip Python 3.11's AST bug.
    """
    intent_id = events.new_id("pi")
    event = succeeded(seed_payment(db, intent_id), intent_id)

    async def run() -> httpx.Response:
        async with served(create_app(settings, broker=broker, db=db)) as client:
            body, headers = signed(event, SECRET)
            return await client.post("/api/webhooks/stripe", content=body, headers=headers)

    assert asyncio.run(run()).status_code == 200
    [message] = queued_messages(broker.client, STRIPE_EVENTS_QUEUE)
    wired = build_worker(settings)
    try:
        redis_id, actors = message.options["redis_message_id"], wired.broker.queue_actors[STRIPE_EVENTS_QUEUE]
        signer = wired.broker.signer
        assert refusal(signer, message, queue=STRIPE_EVENTS_QUEUE, redis_id=redis_id, actors=actors) is None
        wired.broker.get_actor(message.actor_name).fn(*message.args, **message.kwargs)
    finally:
        wired.close()
    assert db.stripe_events.find_one({"_id": event["id"]})["status"] == "processed"
    assert db.payments.find_one({"paymentId": intent_id})["status"] == "completed"


def test_without_aclose_the_connection_closes_with_its_event_loop(settings: Settings, broker: Broker) -> None:
    """An app run without its lifespan never calls ``aclose``: the loop's shutdown closes the connection."""
    enqueuer = build_enqueuer(settings, broker)
    asyncio.run(enqueuer.enqueue(event_message(succeeded())))
    assert broker.client.hlen(MESSAGES) == 1
    assert not enqueuer._connection.is_connected
    gc.collect()  # an unclosed transport would warn here (an error under this suite's filterwarnings)


def test_a_round_trip_whose_cleanup_also_fails_still_answers_every_request(settings: Settings, broker: Broker) -> None:
    """A bug anywhere in the round trip (here its disconnect raising too) fails the requests at once, never hangs."""
    enqueuer = AsyncEnqueuer(broker, settings.redis_url, timeout=0.5)

    async def broken(_commands: list[tuple[bytes, ...]]) -> list[Any]:
        raise RuntimeError("a bug in the round trip")

    async def run() -> list[BaseException | Message[Any]]:
        enqueuer._bind()
        setattr(enqueuer, "_pipeline", broken)  # noqa: B010 - an instance's method replaced

        async def failing_disconnect(**_kwargs: Any) -> None:
            raise RuntimeError("and in its cleanup")

        enqueuer._connection.disconnect = failing_disconnect
        async with asyncio.timeout(5):  # the assertion: answered, not hung
            return await asyncio.gather(
                *(enqueuer.enqueue(event_message(succeeded())) for _ in range(3)), return_exceptions=True
            )

    outcomes = asyncio.run(run())
    assert len(outcomes) == 3 and all(isinstance(outcome, Exception) for outcome in outcomes)


def test_a_connection_that_could_not_be_made_is_made_on_the_next_call(
    settings: Settings, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When building the connection raises (as redis-py 8.2's warning did under ``-W error``), the next
    enqueue builds it again instead of writing to a connection that is None."""
    enqueuer = AsyncEnqueuer(broker, settings.redis_url)
    made = redis.asyncio.ConnectionPool.make_connection
    calls: list[int] = []

    def first_fails(pool: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("could not make the connection")
        return made(pool)

    monkeypatch.setattr(redis.asyncio.ConnectionPool, "make_connection", first_fails)

    async def run() -> Message[Any]:
        try:
            with pytest.raises(RuntimeError, match="could not make"):
                await enqueuer.enqueue(event_message(succeeded()))
            return await enqueuer.enqueue(event_message(succeeded()))
        finally:
            await enqueuer.aclose()

    message = asyncio.run(run())
    assert broker.client.hexists(MESSAGES, message.options["redis_message_id"])
