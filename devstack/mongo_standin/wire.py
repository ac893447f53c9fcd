"""MongoDB wire protocol: framing, decoding of requests and encoding of replies.

Only what a modern driver sends is understood: ``OP_QUERY`` (the first handshake, and legacy
commands on ``db.$cmd``) and ``OP_MSG``. Callers rely on:
  * ``parse_header`` (the first ``HEADER_SIZE`` bytes of a message) and ``decode_body`` (the rest)
    raising ``ProtocolError`` on a frame that can't be trusted (after which the connection must
    be closed): a bad length, an unsupported opCode;
  * ``Request.command`` being the complete command document, with ``OP_MSG`` kind-1 document
    sequences merged in under their identifiers (``documents``, ``updates``, ``deletes``), and
    ``Request.db`` the target database;
  * ``Request.command`` being ``None`` with ``decode_error`` set when the BSON was bad, so the
    caller can still answer (the header parsed, hence a reply can be addressed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

# OP_MSG flag bits.
CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1
# Ignored: a server may always answer an exhaust-allowed request with one ordinary reply (no
# moreToCome), and the driver then asks again with a plain getMore.
EXHAUST_ALLOWED = 1 << 16

# OP_REPLY response flags.
QUERY_FAILURE = 1 << 1
AWAIT_CAPABLE = 1 << 3

MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
# A frame may legitimately carry a full 48 MB of documents plus the command around it.
_MAX_FRAME = MAX_MESSAGE_SIZE + MAX_BSON_OBJECT_SIZE

_HEADER = struct.Struct("<iiii")
HEADER_SIZE = _HEADER.size
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")

# Naive UTC datetimes everywhere: that is what mongomock stores and compares, and BSON encoding
# treats naive datetimes as UTC, so values round-trip exactly (at BSON's millisecond precision).
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=False)


class ProtocolError(Exception):
    """The byte stream is not a MongoDB message we can frame; close the connection."""


@dataclass
class Request:
    """One decoded client message."""

    request_id: int
    op_code: int
    db: str = ""
    command: dict[str, Any] | None = None
    flags: int = 0
    decode_error: str | None = None
    # OP_QUERY on a collection other than $cmd (legacy find): we answer it with an error.
    legacy_namespace: str | None = None

    @property
    def more_to_come(self) -> bool:
        """The client expects no reply (unacknowledged write, w:0)."""
        return self.op_code == OP_MSG and bool(self.flags & MORE_TO_COME)


def parse_header(data: bytes | bytearray) -> tuple[int, int, int]:
    """``(length, request_id, op_code)`` from the first ``HEADER_SIZE`` bytes of a message."""
    length, request_id, _response_to, op_code = _HEADER.unpack_from(data)
    if length < _HEADER.size or length > _MAX_FRAME:
        raise ProtocolError(f"bad message length {length}")
    return length, request_id, op_code


def decode_body(request_id: int, op_code: int, body: bytes) -> Request:
    """Decode the part of a message after its 16-byte header."""
    request = Request(request_id=request_id, op_code=op_code)
    try:
        if op_code == OP_MSG:
            _decode_op_msg(request, body)
        elif op_code == OP_QUERY:
            _decode_op_query(request, body)
        else:
            raise ProtocolError(f"unsupported opCode {op_code}")
    except (bson.errors.InvalidBSON, struct.error, UnicodeDecodeError, IndexError, ValueError) as exc:
        request.command = None
        request.decode_error = f"{type(exc).__name__}: {exc}"
    return request


def _cstring(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode("utf-8"), end + 1


def _decode_op_msg(request: Request, body: bytes) -> None:
    (request.flags,) = _UINT32.unpack_from(body, 0)
    end = len(body)
    if request.flags & CHECKSUM_PRESENT:
        # CRC32C trailer: strip it. Verifying it would need a CRC32C implementation, and TCP
        # already guards a loopback connection.
        end -= 4
    offset = 4
    command: dict[str, Any] | None = None
    sequences: dict[str, list[dict[str, Any]]] = {}
    while offset < end:
        kind = body[offset]
        offset += 1
        if kind == 0:
            (size,) = _INT32.unpack_from(body, offset)
            command = bson.decode(body[offset : offset + size], CODEC_OPTIONS)
            offset += size
        elif kind == 1:
            (size,) = _INT32.unpack_from(body, offset)
            section_end = offset + size
            identifier, docs_start = _cstring(body, offset + 4)
            docs = bson.decode_all(body[docs_start:section_end], CODEC_OPTIONS)
            sequences.setdefault(identifier, []).extend(docs)
            offset = section_end
        else:
            raise ValueError(f"unknown OP_MSG section kind {kind}")
    if command is None:
        raise ValueError("OP_MSG without a body section")
    # A field sent as a document sequence is, to the command, an array under that name.
    for identifier, docs in sequences.items():
        command[identifier] = docs
    request.command = command
    request.db = str(command.get("$db", "admin"))


def _decode_op_query(request: Request, body: bytes) -> None:
    (request.flags,) = _INT32.unpack_from(body, 0)
    namespace, offset = _cstring(body, 4)
    offset += 8  # numberToSkip, numberToReturn: meaningless for commands
    (size,) = _INT32.unpack_from(body, offset)
    query = bson.decode(body[offset : offset + size], CODEC_OPTIONS)
    db, _, collection = namespace.partition(".")
    request.db = db
    if collection != "$cmd":
        request.legacy_namespace = namespace
        request.command = query
        return
    # Drivers wrap commands in $query when they add $readPreference to a legacy query.
    if isinstance(query.get("$query"), dict):
        query = dict(query["$query"])
    request.command = query


def _frame(op_code: int, response_to: int, request_id: int, payload: bytes) -> bytes:
    return _HEADER.pack(_HEADER.size + len(payload), request_id, response_to, op_code) + payload


def encode_op_msg(reply: bytes, response_to: int, request_id: int) -> bytes:
    """An ``OP_MSG`` carrying one already-BSON-encoded reply document (flags 0)."""
    return _frame(OP_MSG, response_to, request_id, _UINT32.pack(0) + b"\x00" + reply)


def encode_op_reply(reply: bytes, response_to: int, request_id: int, query_failure: bool = False) -> bytes:
    """An ``OP_REPLY`` with a single document, as answers ``OP_QUERY`` (the handshake)."""
    flags = AWAIT_CAPABLE | (QUERY_FAILURE if query_failure else 0)
    header = struct.pack("<iqii", flags, 0, 0, 1)
    return _frame(OP_REPLY, response_to, request_id, header + reply)
