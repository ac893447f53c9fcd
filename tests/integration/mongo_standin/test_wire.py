"""Wire-protocol edge cases, spoken over a raw socket: checksums, moreToCome, bad input."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import bson
import pytest

from devstack.mongo_standin.wire import CHECKSUM_PRESENT, MORE_TO_COME, OP_MSG

from .conftest import HOST

pytestmark = pytest.mark.standin


def _port(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def raw(mongo_uri: str) -> Iterator[socket.socket]:
    """A plain TCP connection to the stand-in."""
    with socket.create_connection((HOST, _port(mongo_uri)), timeout=5) as sock:
        yield sock


def _op_msg(
    request_id: int, body: dict[str, Any], flags: int = 0, sequences: dict[str, list[Any]] | None = None
) -> bytes:
    payload = struct.pack("<I", flags) + b"\x00" + bson.encode(body)
    for identifier, docs in (sequences or {}).items():
        section = identifier.encode() + b"\x00" + b"".join(bson.encode(d) for d in docs)
        payload += b"\x01" + struct.pack("<i", 4 + len(section)) + section
    if flags & CHECKSUM_PRESENT:
        payload += b"\x00\x00\x00\x00"  # not verified by the stand-in
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, OP_MSG) + payload


def _read_reply(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    header = _recv(sock, 16)
    length, _, response_to, op_code = struct.unpack("<iiii", header)
    body = _recv(sock, length - 16)
    assert op_code == OP_MSG
    return response_to, bson.decode(body[5:])


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_checksum_trailer_is_accepted(raw: socket.socket) -> None:
    """An OP_MSG with the checksumPresent bit set is answered (its CRC32C trailer stripped)."""
    raw.sendall(_op_msg(1, {"ping": 1, "$db": "admin"}, flags=CHECKSUM_PRESENT))
    assert _read_reply(raw) == (1, {"ok": 1.0})


def test_more_to_come_gets_no_reply_but_is_applied(raw: socket.socket) -> None:
    """A moreToCome write gets no reply; the next request on the connection sees it applied."""
    docs = [{"_id": 1}, {"_id": 2}]
    raw.sendall(_op_msg(1, {"insert": "c", "$db": "wire_mtc"}, MORE_TO_COME, {"documents": docs}))
    raw.sendall(_op_msg(2, {"count": "c", "$db": "wire_mtc"}))
    response_to, reply = _read_reply(raw)
    assert response_to == 2 and reply["n"] == 2
    raw.sendall(_op_msg(3, {"dropDatabase": 1, "$db": "wire_mtc"}))
    assert _read_reply(raw)[1]["ok"] == 1.0


def test_invalid_bson_gets_an_error_reply(raw: socket.socket) -> None:
    """A body that isn't valid BSON is answered with InvalidBSON (22), and the connection lives on."""
    garbage = struct.pack("<I", 0) + b"\x00" + struct.pack("<i", 9) + b"\x99abc\x00\x00"
    raw.sendall(struct.pack("<iiii", 16 + len(garbage), 7, 0, OP_MSG) + garbage)
    response_to, reply = _read_reply(raw)
    assert response_to == 7 and reply["ok"] == 0 and reply["code"] == 22
    raw.sendall(_op_msg(8, {"ping": 1, "$db": "admin"}))
    assert _read_reply(raw) == (8, {"ok": 1.0})


def test_unknown_opcode_closes_only_that_connection(raw: socket.socket, mongo_uri: str) -> None:
    """An unknown opCode closes that connection; the server keeps serving others."""
    raw.sendall(struct.pack("<iiii", 20, 1, 0, 9999) + b"\x00\x00\x00\x00")
    assert raw.recv(1) == b""
    with socket.create_connection((HOST, _port(mongo_uri)), timeout=5) as other:
        other.sendall(_op_msg(1, {"ping": 1, "$db": "admin"}))
        assert _read_reply(other) == (1, {"ok": 1.0})
