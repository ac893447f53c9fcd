"""Structured JSON logs with the ids an operator searches by.

Context (``event_id``, ``payment_id``, ``message_id``) lives in a context variable, so the ingress
(per request task) and the workers (per thread) each see their own. Only whitelisted keys of
``extra=`` are emitted, which keeps secrets and card data out by construction.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

import orjson

from adapters.compat.dramatiq import WORKER_THREAD_LOGGER

_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 - never mutated

#: Keys of ``extra=`` copied into the JSON line; anything else is dropped.
FIELDS = (
    "event_id",
    "event_type",
    "payment_id",
    "message_id",
    "queue",
    "actor",
    "outcome",
    "status",
    "attempt",
    "path",
    "method",
    "duration_ms",
    "error",
)


def push(**ids: str | None) -> Token[dict[str, str]]:
    """Add ids to the current context; ``pop(token)`` restores the previous one."""
    return _context.set({**_context.get(), **{k: v for k, v in ids.items() if v}})


def pop(token: Token[dict[str, str]]) -> None:
    _context.reset(token)


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Attach ids to every log line written inside the block."""
    token = push(**ids)
    try:
        yield
    finally:
        pop(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the context's ids, whitelisted extras."""

    def __init__(self) -> None:
        super().__init__()
        self._second = (math.nan, "")  # the last whole second seen, and its ISO text

    def format(self, record: logging.LogRecord) -> str:
        return self.line(record).decode()

    def line(self, record: logging.LogRecord) -> bytes:
        exc = self.formatException(record.exc_info) if record.exc_info else None
        message = record.getMessage()
        return self.parts_line(record.created, record.levelname, record.name, message, record.__dict__, exc)

    def parts_line(
        self, created: float, level: str, logger: str, msg: str, attributes: Mapping[str, Any], exc: str | None = None
    ) -> bytes:
        """The line of a record made of these parts (``attributes``: the record's, or the ``extra`` it would get)."""
        line: dict[str, Any] = {
            "ts": self._timestamp(created),
            "level": level.lower(),
            "logger": logger,
            "msg": msg,
            **_context.get(),
        }
        for key in FIELDS:
            if key in attributes:
                line[key] = attributes[key]
        if exc is not None:
            line["exc"] = exc
        try:
            # A fifth of json.dumps's cost: this runs for every request the ingress answers.
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # what orjson will not write (integers past 64 bits, lone surrogates)
            return json.dumps(line, default=str).encode()

    def _timestamp(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, its date part cached.

        The same rounding as ``datetime`` (to the microsecond, then cut to the millisecond).
        """
        fraction, whole = math.modf(created)
        micros = round(fraction * 1_000_000)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        second, text = self._second
        if whole != second:
            text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (whole, text)
        return f"{text}.{micros // 1000:03d}+00:00"


class JsonLines(logging.StreamHandler):  # type: ignore[type-arg]
    """Each record as one JSON line in one ``write(2)`` on the stream's file descriptor.

    ``StreamHandler`` encodes the text again, writes through the stream's buffer and then
    flushes it: twice the work per line, and this runs once per request. A stream without a
    descriptor (a test's capture) is written as ``StreamHandler`` does.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        # Only a real file's descriptor: Dramatiq's worker processes log through a pipe object
        # whose fileno() is a framed message pipe, and raw bytes there break the parent's reader
        # (it stops reading; the pipe fills; every thread then blocks on its next log line).
        self.fd: int | None = None
        if isinstance(stream, io.TextIOWrapper):
            try:
                self.fd = stream.fileno()
            except (OSError, ValueError):
                self.fd = None

    def emit(self, record: logging.LogRecord) -> None:
        formatter = self.formatter
        if self.fd is None or not isinstance(formatter, JsonFormatter):
            super().emit(record)
            return
        try:
            self._write(self.fd, formatter.line(record))
        except Exception:
            self.handleError(record)

    def write_info(self, logger: str, msg: str, fields: dict[str, Any]) -> bool:
        """Write the line ``emit`` would for an INFO record of ``logger`` with ``extra=fields``, built
        from the parts; False (nothing written) when this handler does not write to a descriptor."""
        formatter = self.formatter
        if self.fd is None or not isinstance(formatter, JsonFormatter):
            return False
        self.acquire()
        try:
            self._write(self.fd, formatter.parts_line(time.time(), "INFO", logger, msg, fields))
        except Exception:
            record = {**fields, "name": logger, "msg": msg, "levelname": "INFO", "levelno": logging.INFO}
            self.handleError(logging.makeLogRecord(record))
        finally:
            self.release()
        return True

    @staticmethod
    def _write(fd: int, line: bytes) -> None:
        data = line + b"\n"
        written = os.write(fd, data)
        while written < len(data):  # a partial write (a full pipe, a signal): the rest, copied only then
            written += os.write(fd, data[written:])


def info_line(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra=fields)``, written without the record when one ``JsonLines`` alone would write it.

    For the ingress's access line (one per request): building the record and passing it through
    the logger and the handler cost several times writing the line. The line is the one that
    handler would write; whenever anything else could see the record (a filter, another handler
    such as a test's capture, a handler without a descriptor) it goes through ``logging`` as usual.
    """
    handler = _sole_json_lines(logger, logging.INFO)
    if handler is None or not handler.write_info(logger.name, msg, fields):
        logger.info(msg, extra=fields)


def _sole_json_lines(logger: logging.Logger, level: int) -> JsonLines | None:
    """The one handler a record of ``level`` from ``logger`` reaches, if it is a ``JsonLines`` and nothing filters."""
    if logger.disabled or not logger.isEnabledFor(level):
        return None
    found: JsonLines | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if level < handler.level:
                continue
            if found is not None or type(handler) is not JsonLines or handler.filters:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines (idempotent)."""
    sys.stderr.flush()  # what was written through the stream goes out before our direct writes
    handler = JsonLines(sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The JSON lines carry no caller, thread or process: don't gather them for every record
    # (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # The Stripe SDK logs request lines at INFO; they carry nothing we need.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    # Dramatiq's worker threads log a failed message with its arguments (event payloads with
    # customer data); the LogContext middleware logs failures with ids instead.
    logging.getLogger(WORKER_THREAD_LOGGER).setLevel(logging.CRITICAL)
