"""The command table, the context a command runs in, and argument helpers shared by commands.

Handlers are plain functions ``(ctx, cmd) -> reply`` registered with ``@command("name", ...)``.
Callers rely on: a handler's return value being the reply *without* ``ok`` (added by the engine)
unless it sets ``ok`` itself; and a handler raising ``CommandError`` (or anything, really -- the
engine turns every exception into an error reply) to fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import StandinClient, StandinCollection
from .cursors import CursorRegistry
from .errors import BAD_VALUE, FAILED_TO_PARSE, INVALID_NAMESPACE, CommandError

Reply = dict[str, Any]
Handler = Callable[["Context", dict[str, Any]], Reply]

COMMANDS: dict[str, Handler] = {}
# Commands after which the data may differ (drives the periodic snapshot).
WRITE_COMMANDS: set[str] = set()


@dataclass
class Context:
    """What a command may use: the data, the cursors, and the request's database and connection."""

    client: StandinClient
    cursors: CursorRegistry
    db: str
    connection_id: int
    # Set by a handler that wrote although its command usually doesn't (aggregate with $out).
    wrote: bool = False

    def collection(self, name: str) -> StandinCollection:
        return self.client.collection(self.db, name)

    def namespace(self, name: str) -> str:
        return f"{self.db}.{name}"

    def exists(self, name: str) -> bool:
        """Whether collection ``name`` exists (has documents or indexes, or was created)."""
        return bool(self.client.store[self.db][name].is_created)


def command(*names: str, writes: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler under ``names`` (aliases included, e.g. ``isMaster``/``ismaster``)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            COMMANDS[name] = handler
            if writes:
                WRITE_COMMANDS.add(name)
        return handler

    return register


def collection_arg(cmd: dict[str, Any]) -> str:
    """The collection named by the command's first field, e.g. ``{find: "orders"}``."""
    value = next(iter(cmd.values()))
    if not isinstance(value, str) or not value:
        raise CommandError(INVALID_NAMESPACE, f"collection name has invalid type {type(value).__name__}")
    return value


def doc_arg(cmd: dict[str, Any], name: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """Field ``name`` as a document (``default``, or {} when absent)."""
    value = cmd.get(name)
    if value is None:
        return {} if default is None else default
    if not isinstance(value, dict):
        raise CommandError(FAILED_TO_PARSE, f"'{name}' must be an object, not {type(value).__name__}")
    return value


def int_arg(cmd: dict[str, Any], name: str, default: int | None = None) -> int | None:
    """Field ``name`` as a non-negative whole number (``default`` when absent)."""
    value = cmd.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise CommandError(FAILED_TO_PARSE, f"'{name}' must be a whole number")
    if value < 0:
        raise CommandError(BAD_VALUE, f"'{name}' must be non-negative, not {value}")
    return int(value)


def batch_size_arg(cmd: dict[str, Any]) -> int | None:
    """``cursor.batchSize`` (aggregate and the list* commands) or top-level ``batchSize``."""
    cursor = doc_arg(cmd, "cursor")
    return int_arg(cursor, "batchSize") if "batchSize" in cursor else int_arg(cmd, "batchSize")
