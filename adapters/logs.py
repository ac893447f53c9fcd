"""Structured JSON logs with the ids an operator searches by.

Context (``event_id``, ``payment_id``, ``message_id``) lives in a context variable, so the ingress
(per request task) and the workers (per thread) each see their own. Only whitelisted keys of
``extra=`` are emitted, which keeps secrets and card data out by construction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

import orjson

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
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context.get(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        try:
            # A fifth of json.dumps's cost: this runs for every request the ingress answers.
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson will not write (integers past 64 bits, lone surrogates)
            return json.dumps(line, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
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
    logging.getLogger("dramatiq.worker.WorkerThread").setLevel(logging.CRITICAL)
