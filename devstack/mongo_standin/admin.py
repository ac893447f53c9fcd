"""Server-level commands: the handshake (``hello``), ``ping``, ``buildInfo``, sessions, databases.

What callers (drivers) rely on is the handshake: a standalone, writable primary speaking wire
version 21 (MongoDB 7.0) with logical sessions, no compression, no ``topologyVersion`` (so
drivers poll ``hello`` instead of streaming it over exhaust).
"""

from __future__ import annotations

import datetime
from typing import Any

from bson.int64 import Int64
from mongomock.filtering import filter_applies

from .backend import SERVER_VERSION
from .registry import Context, Reply, command, doc_arg
from .wire import MAX_BSON_OBJECT_SIZE, MAX_MESSAGE_SIZE

MAX_WIRE_VERSION = 21  # MongoDB 7.0
MAX_WRITE_BATCH_SIZE = 100_000
LOGICAL_SESSION_TIMEOUT_MINUTES = 30


def hello_reply(connection_id: int) -> Reply:
    """The answer to ``hello``/``isMaster``, also over the legacy ``OP_QUERY`` handshake."""
    return {
        "helloOk": True,
        "isWritablePrimary": True,
        "ismaster": True,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
        "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE,
        "localTime": datetime.datetime.now(datetime.UTC),
        "logicalSessionTimeoutMinutes": LOGICAL_SESSION_TIMEOUT_MINUTES,
        "connectionId": connection_id,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": False,
        "ok": 1.0,
    }


@command("hello", "isMaster", "ismaster")
def hello(ctx: Context, cmd: dict[str, Any]) -> Reply:
    return hello_reply(ctx.connection_id)


@command("ping")
def ping(ctx: Context, cmd: dict[str, Any]) -> Reply:
    return {}


@command("buildInfo", "buildinfo")
def build_info(ctx: Context, cmd: dict[str, Any]) -> Reply:
    parts = [int(p) for p in SERVER_VERSION.split(".")]
    return {
        "version": SERVER_VERSION,
        "gitVersion": "mongo-standin",
        "versionArray": [*parts, 0],
        "bits": 64,
        "debug": False,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "storageEngines": ["mongomock"],
        "javascriptEngine": "none",
        "modules": [],
    }


@command("endSessions", "refreshSessions", "killSessions", "startSession")
def sessions(ctx: Context, cmd: dict[str, Any]) -> Reply:
    # Sessions are accepted and ignored: every command is atomic and immediately visible here.
    return {}


@command("listDatabases")
def list_databases(ctx: Context, cmd: dict[str, Any]) -> Reply:
    name_only = bool(cmd.get("nameOnly"))
    query = doc_arg(cmd, "filter")
    databases: list[dict[str, Any]] = []
    store = ctx.client.store
    for name in sorted(store.list_created_database_names()):
        collections = store[name].list_created_collection_names()
        # There is no disk: report a nominal size that grows with the number of collections.
        entry: dict[str, Any] = {"name": name}
        if not name_only:
            entry.update(sizeOnDisk=Int64(4096 * len(collections)), empty=False)
        if filter_applies(query, entry):
            databases.append(entry)
    reply: Reply = {"databases": databases}
    if not name_only:
        reply["totalSize"] = Int64(sum(int(d.get("sizeOnDisk", 0)) for d in databases))
        reply["totalSizeMb"] = Int64(int(reply["totalSize"]) // (1024 * 1024))
    return reply


@command("dropDatabase", writes=True)
def drop_database(ctx: Context, cmd: dict[str, Any]) -> Reply:
    ctx.client.drop_database_store(ctx.db)
    return {"dropped": ctx.db}
