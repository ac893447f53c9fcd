"""Every use of redis-py's internals (kept below its next major in pyproject.toml), and the boot check.

One use: the ingress's batched enqueue (``adapters.async_queue``) reads a pipeline's replies
straight from an asyncio connection's parser (``Connection._parser.read_response``), which returns
an error reply (NOSCRIPT, OOM, READONLY…) where ``Connection.read_response`` raises it, and then
sets ``next_health_check`` as ``read_response`` does after a read. The public way,
``Connection.read_response(disconnect_on_error=False)`` with each ``ResponseError`` caught, reads
the same replies at a higher cost per reply (docs/performance.md#figures-from-code-comments): its
per-read timeout and error handling, which the enqueuer does once per round trip.

``check_redis_internals`` stops the ingress at boot if that changed.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from typing import Any

import redis
import redis.asyncio

from adapters.compat import source_of

#: The redis-py release this module was written against (pyproject.toml: below the next major).
REDIS_WRITTEN_FOR = "8.2"


async def read_replies(connection: Any, count: int) -> list[Any]:
    """The next ``count`` replies on ``connection``, an error reply returned as its ``ResponseError``."""
    parser = connection._parser
    try:
        replies = [await parser.read_response() for _ in range(count)]
    except OSError as broken:  # a RedisError, as ``read_response`` reports it
        raise redis.ConnectionError(f"Error while reading from Redis: {broken!r}") from broken
    # As ``read_response`` does: a connection that just answered needs no health-check PING.
    connection.next_health_check = asyncio.get_running_loop().time() + connection.health_check_interval
    return replies


def check_redis_internals() -> None:
    """Raise ``RuntimeError`` naming what is missing if the redis-py internals used here changed."""

    def changed(what: str) -> RuntimeError:
        return RuntimeError(
            f"redis-py internals changed: {what}; adapters/compat/redis.py was written for redis-py"
            f" {REDIS_WRITTEN_FOR} (bounded in pyproject.toml; installed: {version('redis')})"
        )

    try:
        connection = redis.asyncio.Connection()  # no I/O before it connects
    except Exception as error:
        raise changed(f"an asyncio Connection cannot be made as before ({error!r})") from error
    parser = getattr(connection, "_parser", None)
    if parser is None or not inspect.iscoroutinefunction(getattr(parser, "read_response", None)):
        raise changed("an asyncio Connection has no _parser with a coroutine read_response")
    for name in ("next_health_check", "health_check_interval"):
        if not hasattr(connection, name):
            raise changed(f"an asyncio Connection has no {name}")
    cls = redis.asyncio.Connection
    texts = [
        # read_response reads from the parser, raises the error replies it returns, then sets the health check.
        (
            "Connection._read_response_from_parser",
            source_of(cls._read_response_from_parser),
            "self._parser.read_response(",
        ),
        ("Connection.read_response", source_of(cls.read_response), "isinstance(response, ResponseError)"),
        ("Connection.read_response", source_of(cls.read_response), "self.next_health_check = "),
    ]
    for where, text, needle in texts:
        if needle not in text:
            raise changed(f"{where} no longer contains {needle!r}")
