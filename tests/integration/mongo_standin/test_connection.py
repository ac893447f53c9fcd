"""A connection answers its messages in order, whatever the chunks they arrive in, however many arrive
at once, whether or not the replies wait for the journal, and with the client not reading for a while."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import HOST, Standin
from .test_wire import _op_msg, _port, _read_reply

pytestmark = pytest.mark.standin

_JOURNALED = {"w": "majority", "j": True}


def _requests(count: int, db: str, journaled: bool) -> list[bytes]:
    """Alternately an insert and a count, so that each reply tells whether the messages ran in order."""
    messages = []
    for i in range(count):
        body: dict[str, Any]
        if i % 2 == 0:
            body = {"insert": "c", "documents": [{"_id": i}], "$db": db}
            if journaled:
                body["writeConcern"] = _JOURNALED
        else:
            body = {"count": "c", "$db": db}
        messages.append(_op_msg(i + 1, body))
    return messages


def _check_replies(sock: socket.socket, count: int) -> None:
    for i in range(count):
        response_to, reply = _read_reply(sock)
        assert response_to == i + 1 and reply["ok"] == 1.0
        assert reply["n"] == (1 if i % 2 == 0 else (i + 1) // 2)


@pytest.mark.parametrize("journaled", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_pipelined_messages_are_answered_in_order(
    standin_factory: Callable[..., Standin], tmp_path: Path, journaled: bool, chunk: int
) -> None:
    standin = standin_factory("--snapshot", str(tmp_path / "state.bson"))
    data = b"".join(_requests(40, "pipelined", journaled))
    with socket.create_connection((HOST, standin.port), timeout=10) as sock:
        for start in range(0, len(data), chunk):
            sock.sendall(data[start : start + chunk])
        _check_replies(sock, 40)


def test_messages_before_the_end_of_the_stream_are_answered(mongo_uri: str) -> None:
    """A client that sends its requests and then shuts its side down still gets every reply."""
    with socket.create_connection((HOST, _port(mongo_uri)), timeout=10) as sock:
        sock.sendall(b"".join(_requests(6, "half_closed", False)))
        sock.shutdown(socket.SHUT_WR)
        _check_replies(sock, 6)
        assert sock.recv(1) == b""


@pytest.mark.parametrize("cut", [5, 20])
def test_a_message_cut_short_by_the_end_of_the_stream_gets_no_reply(mongo_uri: str, cut: int) -> None:
    with socket.create_connection((HOST, _port(mongo_uri)), timeout=10) as sock:
        sock.sendall(_op_msg(1, {"ping": 1, "$db": "admin"}) + _op_msg(2, {"ping": 1, "$db": "admin"})[:cut])
        sock.shutdown(socket.SHUT_WR)
        assert _read_reply(sock) == (1, {"ok": 1.0})
        assert sock.recv(1) == b""


def test_a_bad_length_closes_the_connection(mongo_uri: str) -> None:
    with socket.create_connection((HOST, _port(mongo_uri)), timeout=10) as sock:
        sock.sendall(struct.pack("<iiii", 8, 1, 0, 2013))
        assert sock.recv(1) == b""


def test_a_client_reading_late_gets_every_reply(mongo_uri: str) -> None:
    """Replies of ~100 KB to requests sent without reading: the server stops reading and writing
    while the client doesn't read, and everything arrives, in order, once it does."""
    big = "x" * 100_000
    count = 60
    with socket.create_connection((HOST, _port(mongo_uri)), timeout=30) as sock:
        sock.sendall(_op_msg(1, {"insert": "c", "documents": [{"_id": 0, "big": big}], "$db": "late_reader"}))
        assert _read_reply(sock)[1]["n"] == 1
        finds = [_op_msg(i, {"find": "c", "filter": {"_id": 0}, "$db": "late_reader"}) for i in range(2, count + 2)]
        sender = threading.Thread(target=sock.sendall, args=(b"".join(finds),))
        sender.start()
        sender.join(1.0)  # the server's replies pile up unread meanwhile
        for i in range(2, count + 2):
            response_to, reply = _read_reply(sock)
            assert response_to == i and reply["cursor"]["firstBatch"][0]["big"] == big
        sender.join(10)
        sock.sendall(_op_msg(99, {"dropDatabase": 1, "$db": "late_reader"}))
        assert _read_reply(sock)[1]["ok"] == 1.0
