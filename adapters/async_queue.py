"""Dramatiq's enqueue on an asyncio Redis connection, with the enqueues of concurrent requests batched.

The ingress answers a webhook only once Redis holds its message. Through the blocking broker that
cost a thread-pool hop and a round trip per request; here each request appends its message to a
pending list and awaits its own future, while one task at a time writes everything pending as one
pipeline and resolves each future from that command's own reply. A request is acknowledged only
after Redis answered *its* command; when the round trip fails (connection lost, timeout) every
request of that batch gets the error, and the route answers 503 so Stripe delivers again.

What is written is exactly what ``RedisBroker.enqueue`` writes for a message signed where it is
made (``Signer.sign``; the broker's own middleware runs), and Dramatiq's ``dispatch.lua`` is
called with the keys and arguments of ``RedisBroker._dispatch("enqueue")`` (namespace, timestamp,
queue, broker id, heartbeat timeout, dead-message TTL, maintenance draw, Lua unpack size, Redis
message id, encoded message), so the worker side needs no change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import orjson
import redis.asyncio
from dramatiq import Message
from dramatiq.encoder import JSONEncoder
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from adapters.compat import dramatiq as internals
from adapters.compat.dramatiq import current_millis
from adapters.compat.redis import check_redis_internals, read_replies
from adapters.queue import REDIS_SOCKET_TIMEOUT, Broker
from adapters.settings import Settings

log = logging.getLogger(__name__)

#: Most commands written in one round trip; the rest wait for the next (bounds one batch's latency).
MAX_BATCH = 256

#: One Redis command in the protocol's framing, in parts that make it when written one after the other.
Command = tuple[bytes, ...]


@dataclass(slots=True)
class _Pending:
    #: The message's framed arguments of dispatch.lua before the Lua unpack size, and after it.
    command: tuple[bytes, bytes]
    future: asyncio.Future[None] = field(repr=False)


def encode(message: Message[Any]) -> bytes:
    """``message.encode()``, with orjson when Dramatiq's encoder is its plain JSON one (far cheaper).

    The bytes differ only in escaping and float spelling, not in what ``json.loads`` reads back
    (floats round-trip exactly). Integers beyond 64 bits, which orjson refuses, take Dramatiq's path.
    orjson writes a dataclass itself, its fields in the order ``Message.asdict()`` lists them. How much
    cheaper: docs/performance.md#figures-from-code-comments.
    """
    if type(dramatiq.get_encoder()) is JSONEncoder:
        try:
            return orjson.dumps(message)
        except TypeError:
            pass
    return message.encode()


def uuid4_text() -> str:
    """``str(uuid.uuid4())``: the same random bytes and version bits, without the ``UUID`` (a third of the cost)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def with_redis_id(message: Message[Any]) -> Message[Any]:
    """``message.copy(options={"redis_message_id": …})`` as ``RedisBroker.enqueue`` makes it.

    The same shallow copy of the fields, made without ``copy`` (``dataclasses.replace`` inspects
    the fields each time) or even ``__init__`` (the frozen dataclass's sets each field through
    ``object.__setattr__`` and checks ``args`` again; ``message`` went through it when it was made).
    """
    copied = object.__new__(type(message))
    copied.__dict__.update(message.__dict__, options={**message.options, "redis_message_id": uuid4_text()})
    return copied


def frame(arg: bytes | str | int) -> bytes:
    """One argument of a Redis command in the protocol's framing (a bulk string)."""
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def resp(*args: bytes | str | int) -> bytes:
    """One Redis command in the protocol's own framing (redis-py's packer costs more than the command)."""
    return b"*%d\r\n" % len(args) + b"".join(map(frame, args))


class AsyncEnqueuer:
    """``RedisBroker.enqueue`` (no delay) on one redis.asyncio connection, batching concurrent calls.

    Built once per ingress process, bound to the event loop that first uses it.
    """

    def __init__(self, broker: Broker, url: str, timeout: float = REDIS_SOCKET_TIMEOUT) -> None:
        self.broker = broker
        self.url = url
        self.timeout = timeout
        self._script = internals.DISPATCH_SCRIPT
        self._sha = hashlib.sha1(self._script).hexdigest()
        self._unpack_size: int | None = None
        # dispatch.lua's arguments that are the same for every message: the broker's id, its
        # heartbeat timeout and dead-message TTL (framed here), the unpack size (once known).
        self._ids = b"".join(map(frame, (broker.broker_id, broker.heartbeat_timeout, broker.dead_message_ttl)))
        self._framed: tuple[bytes, bytes] | None = None
        self._pending: list[_Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Any = None
        self._drain: asyncio.Task[None] | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    async def enqueue(self, message: Message[Any]) -> Message[Any]:
        """Enqueue ``message``; returns once Redis holds it, raises ``redis.RedisError`` when it did not."""
        loop = self._bind()
        if self._closer is None:
            self._closer = self._close_with_loop(self._connection)
            await anext(self._closer)  # runs to its yield at once: nothing is awaited yet
        # Every message enqueued here is new, made from an event whose Stripe signature verified: it
        # is signed here, once. Then as RedisBroker.enqueue: a fresh Redis id, the broker's middleware.
        message = with_redis_id(self.broker.signer.sign(message))
        self.broker.emit_before("enqueue", message, None)
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Pending(self._arguments(message), future))
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(self._run())
        # ``_flush`` resolves every future within its timeout; the bound here only turns a bug in it
        # into an error for this request instead of a request (and a test run) that waits forever.
        try:
            async with asyncio.timeout(2 * self.timeout + 1):
                await future
        except TimeoutError as late:
            raise redis.TimeoutError(f"the enqueue was not answered within {2 * self.timeout + 1} s") from late
        self.broker.emit_after("enqueue", message, None)
        return message

    def _arguments(self, message: Message[Any]) -> tuple[bytes, bytes]:
        """What ``RedisBroker._dispatch("enqueue")`` passes to dispatch.lua for ``message``, framed.

        dispatch(args=[command, timestamp, queue, broker id, heartbeat, ttl, maintenance, unpack size,
        redis id, message]): the message's own ones before the unpack size (known later), and after.
        """
        maintenance = internals.maintenance_draw(self.broker.maintenance_chance)
        before = frame(current_millis()) + frame(message.queue_name) + self._ids + frame(maintenance)
        redis_id, data = message.options["redis_message_id"].encode(), encode(message)
        # Both framed as ``frame`` frames them, in one formatting: the message is copied once, not twice.
        return before, b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(redis_id), redis_id, len(data), data)

    def _constants(self, unpack_size: int) -> tuple[bytes, bytes]:
        """The head of every EVALSHA of this enqueuer and the framed unpack size, framed once."""
        if self._framed is None:
            head = resp("EVALSHA", self._sha, 1, self.broker.namespace, "enqueue")
            head = b"*14" + head[head.index(b"\r\n") :]  # 5 framed here, 9 more per message
            self._framed = (head, frame(unpack_size))
        return self._framed

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The running loop; a new one (a test client's) gets a new connection, the old one is dropped."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # The connection is made first: if that raises, the next call tries again.
            pool = redis.asyncio.ConnectionPool.from_url(
                self.url,
                # One timeout for a whole round trip (``_flush``) instead of one per read.
                socket_timeout=None,
                socket_connect_timeout=self.timeout,
                health_check_interval=30,
                # A refused connection is an outage now (503, Stripe retries), not after seconds of back-off.
                retry=Retry(NoBackoff(), 1),
            )
            self._connection = pool.make_connection()
            self._loop, self._pending, self._drain, self._closer = loop, [], None, None
        return loop

    async def _run(self) -> None:
        """Write what is pending, one batch per round trip, until nothing is."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self._flush(batch)
            finally:  # whatever went wrong in there, no request of the batch is left waiting
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(redis.ConnectionError("the enqueue's round trip failed"))

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._round_trip(batch)
        except Exception as exc:
            # Which commands Redis ran is unknown: none is acknowledged, the connection starts afresh.
            # An outage (RedisError, or the timeout) is a 503 at the route; anything else a 500.
            await self._connection.disconnect(nowait=True)
            if isinstance(exc, TimeoutError) and not isinstance(exc, redis.RedisError):
                exc = redis.TimeoutError(f"no answer from Redis within {self.timeout} s")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the requests waiting on this batch
            await self._connection.disconnect(nowait=True)
            for pending in batch:
                if not pending.future.done():
                    pending.future.cancel()
            raise
        for pending, reply in zip(batch, replies, strict=True):
            if pending.future.done():  # its request went away (cancelled); the message is in Redis anyway
                continue
            if isinstance(reply, Exception):
                pending.future.set_exception(reply)
            else:
                pending.future.set_result(None)

    async def _round_trip(self, batch: list[_Pending]) -> list[Any]:
        """One pipeline of EVALSHA; the script is loaded and the refused commands sent again if Redis lost it."""
        unpack_size = await self._lua_unpack_size()
        replies = await self._pipeline([self._evalsha(p.command, unpack_size) for p in batch])
        refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if refused:  # first use, or Redis restarted: NOSCRIPT means that command did not run
            await self._pipeline([(resp("SCRIPT", "LOAD", self._script),)])
            again = await self._pipeline([self._evalsha(batch[i].command, unpack_size) for i in refused])
            for i, reply in zip(refused, again, strict=True):
                replies[i] = reply
        return replies

    def _evalsha(self, arguments: tuple[bytes, bytes], unpack_size: int) -> Command:
        """One message's EVALSHA of dispatch.lua (its arguments from ``_arguments``), in its parts."""
        head, unpack = self._constants(unpack_size)
        before, after = arguments
        return head, before, unpack, after

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        """Write every command at once, then read one reply each; an error reply (NOSCRIPT, OOM,
        READONLY…) is returned as its ``ResponseError``, not raised."""
        connection = self._connection
        # Written part by part (one writev), never joined: joining a batch copies it into a fresh
        # buffer of a few hundred KB each round trip, a cost paid per message
        # (docs/performance.md#figures-from-code-comments).
        await connection.send_packed_command([part for command in commands for part in command])
        # Error replies returned, not raised; the timeout and error handling ``read_response`` does per
        # reply, ``_flush`` does once for the whole round trip.
        return await read_replies(connection, len(commands))

    async def _lua_unpack_size(self) -> int:
        """Dramatiq's ``_max_unpack_size()``: half the Lua stack Redis allows, found once per process."""
        if self._unpack_size is None:
            self._unpack_size = internals.known_unpack_size()  # once the blocking broker asked
        if self._unpack_size is None:
            [size] = await self._pipeline([(resp("EVAL", internals.MAXSTACK_SCRIPT, 0),)])
            if isinstance(size, Exception):
                raise size
            self._unpack_size = internals.unpack_size(int(size))
        return self._unpack_size

    async def aclose(self) -> None:
        """Let the batch in flight finish, then close the connection."""
        if self._drain is not None and not self._drain.done() and self._loop is asyncio.get_running_loop():
            await asyncio.wait([self._drain], timeout=self.timeout)
        if self._connection is not None:
            await self._connection.disconnect()  # waits until closed: the loop may close right after

    @staticmethod
    async def _close_with_loop(connection: Any) -> AsyncGenerator[None, None]:
        """Parked for the life of the loop: its shutdown (``asyncio.run``'s, uvicorn's, a test client's)
        finalizes the async generators it saw start, and this one closes the connection then.

        For apps run without their lifespan (``httpx.ASGITransport``), whose ``aclose`` never runs: an
        open connection on a closed loop is a ``ResourceWarning`` at some later garbage collection.
        """
        try:
            yield
        finally:
            await connection.disconnect()


def build_enqueuer(settings: Settings, broker: Broker) -> AsyncEnqueuer:
    """The ingress's webhook enqueuer: ``broker``'s ids, settings and signer, on ``REDIS_URL``.

    Refuses to build (the ingress does not start) if the library internals it writes and reads
    through changed (``adapters.compat``).
    """
    internals.check_dramatiq_internals(broker)
    check_redis_internals()
    return AsyncEnqueuer(broker, settings.redis_url)
