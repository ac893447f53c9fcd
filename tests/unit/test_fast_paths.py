"""The webhook's fast paths (orjson) give exactly what the exact paths they stand in for give.

``parse.json_value`` (orjson, else the stdlib path with its precise 400s and 422s),
``queue.signed_form`` (the bytes the HMAC covers, which old and new workers must agree on) and
``queue.redact`` (the targeted copy, else the full walk).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.async_queue import resp
from adapters.queue import _redact_all, redact
from adapters.signing import _contains, signed_form
from ingress import parse
from payments_ops import events

fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

floats = st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=-1e-3, max_value=1e-3)
scalars = st.none() | st.booleans() | st.integers() | st.integers(-(2**64), 2**64) | st.text() | floats
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30
)


def exact(raw: bytes) -> tuple[str, Any]:
    try:
        return "value", parse._exact_json(raw)
    except (parse.Malformed, parse.Invalid) as refused:
        return refused.code, None


def parsed(raw: bytes) -> tuple[str, Any]:
    try:
        return "value", parse.json_value(raw)
    except (parse.Malformed, parse.Invalid) as refused:
        return refused.code, None


@fast
@given(values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
def test_json_value_answers_as_the_exact_parser_does(raw: bytes) -> None:
    """Any body: the same value (including int vs float), or the same refusal code."""
    got, want = parsed(raw), exact(raw)
    assert got == want and repr(got) == repr(want)


@pytest.mark.parametrize(
    "raw",
    [b"18446744073709551616", b"[-9223372036854775809]", b'{"a": 1e400}', b'"\\ud800"', b"\xef\xbb\xbf{}",
     b"[" * 33 + b"]" * 33, b'{"a":' * 33 + b"1" + b"}" * 33, b"NaN", b"[1.5e-7, 0.00001]"],
)  # fmt: skip
def test_what_orjson_reads_differently_or_refuses_gets_the_exact_answer(raw: bytes) -> None:
    """Big integers, infinities, lone surrogates, a byte order mark, depth, NaN, small floats."""
    assert repr(parsed(raw)) == repr(exact(raw))


def legacy_form(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@fast
@given(values)
def test_the_signed_form_is_the_bytes_json_dumps_gives(value: Any) -> None:
    """Old and new code hash the same bytes, floats and big integers included."""
    signed = ["process_stripe_event", [value], {}]
    try:
        want = legacy_form(signed)
    except UnicodeEncodeError:  # lone surrogates: both refuse
        with pytest.raises(UnicodeEncodeError):
            signed_form(signed)
        return
    assert signed_form(signed) == want


@fast
@given(st.binary(max_size=80) | st.lists(st.sampled_from([b"e", b"-", b"0", b".", b"x"]), max_size=80).map(b"".join))
def test_the_search_from_a_rare_byte_finds_what_in_finds(data: bytes) -> None:
    """``_contains`` answers ``in``, with few or many (past ``_FEW``) of the rare byte."""
    for pattern, rare in ((b"e-", b"-"), (b"0.0000", b"."), (b"0.0000", b"0")):
        assert _contains(data, pattern, rare) == (pattern in data)


@fast
@given(values)
def test_redact_drops_every_secret_as_the_full_walk_does(value: Any) -> None:
    """Any payload, and a Stripe event with secrets nested anywhere: the same copy as the full walk."""
    event = events.event("payment_intent.succeeded", {"id": "pi_1", "client_secret": "pi_1_secret", "x": value})
    for payload in (value, event, {**event, "data": {"object": {"nested": [{"client_secret": "s"}]}}}):
        assert redact(payload) == _redact_all(payload)
    assert "client_secret" not in json.dumps(redact(event))


@fast
@given(
    st.sampled_from(["EVALSHA", "EVAL", "SCRIPT"]),
    st.lists(st.binary(max_size=40) | st.text(max_size=20) | st.integers(), max_size=12),
)
def test_commands_are_framed_as_redis_py_frames_them(name: str, args: list[Any]) -> None:
    """The webhook's own RESP framing gives redis-py's bytes for the same command."""
    from redis.asyncio.connection import Connection

    assert resp(name, *args) == b"".join(Connection().pack_command(name, *args))


@fast
@given(st.floats(min_value=0, max_value=4_102_444_800))
def test_log_times_are_written_as_datetime_writes_them(created: float) -> None:
    """The cached-date timestamp is ``isoformat(timespec="milliseconds")`` to the character."""
    from datetime import UTC, datetime

    from adapters.logs import JsonFormatter

    formatter = JsonFormatter()
    formatter._timestamp(created - 1)  # a cached second that is not this one's
    want = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert formatter._timestamp(created) == want == formatter._timestamp(created)


def test_each_record_is_one_json_line_on_the_descriptor(tmp_path: Any) -> None:
    """The handler writes whole lines to the file descriptor; a stream without one is written as usual."""
    import io
    import logging

    from adapters.logs import JsonLines, log_context

    logger = logging.getLogger("tests.fast_paths")
    logger.propagate, logger.level = False, logging.INFO
    with open(tmp_path / "log", "w") as stream:
        on_fd, in_memory = JsonLines(stream), JsonLines(io.StringIO())
        for handler in (on_fd, in_memory):
            logger.addHandler(handler)
        try:
            with log_context(request_id="r1"):
                logger.info("request", extra={"status": 200, "path": "/x", "card": "4242"})
                logger.warning("é")
        finally:
            for handler in (on_fd, in_memory):
                logger.removeHandler(handler)
    written = (tmp_path / "log").read_text().splitlines()
    assert in_memory.stream.getvalue().splitlines() == written
    first, second = map(json.loads, written)
    assert (first["msg"], first["status"], first["request_id"], "card" in first) == ("request", 200, "r1", False)
    assert (second["level"], second["msg"]) == ("warning", "é")


def test_a_line_the_descriptor_takes_in_parts_is_written_whole(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that takes only part of a line (a full pipe, a signal) is followed by the rest, in order."""
    import os

    from adapters.logs import JsonLines

    line = b'{"msg":"a line longer than the five bytes each write takes"}'
    write = os.write
    with open(tmp_path / "log", "wb") as stream:
        monkeypatch.setattr(os, "write", lambda fd, data: write(fd, data[:5]))
        JsonLines._write(stream.fileno(), line)
        monkeypatch.undo()
    assert (tmp_path / "log").read_bytes() == line + b"\n"


def test_an_access_line_written_directly_is_the_line_its_record_would_give(tmp_path: Any) -> None:
    """``info_line`` writes, without a record, the line ``JsonLines`` writes for ``logger.info(..., extra=...)``."""
    import logging

    from adapters.logs import JsonLines, info_line, log_context

    logger = logging.getLogger("tests.fast_paths.access")
    logger.propagate, logger.level = False, logging.INFO
    fields = {"event_id": "evt_1", "outcome": "enqueued", "status": 200, "duration_ms": 1.25, "card": "4242"}
    with open(tmp_path / "log", "w") as stream:
        logger.addHandler(JsonLines(stream))
        try:
            with log_context(request_id="r1"):
                logger.info("request", extra=fields)
                info_line(logger, "request", fields)
        finally:
            logger.handlers.clear()
    by_record, direct = (json.loads(line) for line in (tmp_path / "log").read_text().splitlines())
    assert by_record.pop("ts")[:19] == direct.pop("ts")[:19]
    assert list(direct.items()) == list(by_record.items())
    assert direct["request_id"] == "r1" and "card" not in direct


def test_an_access_line_goes_through_logging_when_anything_else_would_see_it(tmp_path: Any) -> None:
    """Another handler (a test's capture), a filter, or a handler without a descriptor get the record as usual."""
    import io
    import logging

    from adapters.logs import JsonLines, info_line

    logger = logging.getLogger("tests.fast_paths.access_seen")
    logger.propagate, logger.level = False, logging.INFO
    seen: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    def drop_all(record: logging.LogRecord) -> bool:
        return False

    with open(tmp_path / "log", "w") as stream:
        on_fd = JsonLines(stream)
        logger.addHandler(on_fd)
        try:
            logger.addHandler(Capture())
            info_line(logger, "request", {"status": 200})  # both handlers
            logger.handlers.pop()
            logger.addFilter(drop_all)
            info_line(logger, "request", {"status": 201})  # neither: the logger's filter drops it
            logger.removeFilter(drop_all)
            logger.handlers[:] = [JsonLines(io.StringIO())]
            info_line(logger, "request", {"status": 202})  # no descriptor: written through the stream
            in_memory = logger.handlers[0]
        finally:
            logger.handlers.clear()
    assert [record.__dict__["status"] for record in seen] == [200]
    assert [json.loads(line)["status"] for line in (tmp_path / "log").read_text().splitlines()] == [200]
    assert isinstance(in_memory, JsonLines) and isinstance(in_memory.stream, io.StringIO)
    assert json.loads(in_memory.stream.getvalue())["status"] == 202


def test_an_enqueue_command_is_framed_as_the_generic_framing_frames_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The EVALSHA with its constant parts framed once is byte for byte the one framed whole,
    with the arguments ``RedisBroker._dispatch("enqueue")`` gives dispatch.lua."""
    from dramatiq import Message
    from dramatiq.brokers.redis import MAINTENANCE_SCALE
    from dramatiq.brokers.stub import StubBroker

    from adapters import async_queue

    broker: Any = StubBroker()
    broker.namespace, broker.broker_id, broker.heartbeat_timeout, broker.dead_message_ttl = "dramatiq", "b-1", 30, 7
    enqueuer = async_queue.AsyncEnqueuer(broker, "redis://127.0.0.1:1/0")
    for millis, maintenance, queue, args in [(1700000000123, 0, "stripe-events", ({"x": "é"},)), (5, 1, "emails", ())]:
        monkeypatch.setattr(async_queue, "current_millis", lambda millis=millis: millis)
        broker.maintenance_chance = MAINTENANCE_SCALE * maintenance  # drawn: never, or always
        message = async_queue.with_redis_id(Message(queue, "actor", args, {}, {}))
        redis_id, data = message.options["redis_message_id"], async_queue.encode(message)
        generic = resp("EVALSHA", enqueuer._sha, 1, "dramatiq", "enqueue", millis, queue, "b-1", 30, 7, maintenance,
                       500, redis_id, data)  # fmt: skip
        assert b"".join(enqueuer._evalsha(enqueuer._arguments(message), 500)) == generic


def test_a_message_with_its_redis_id_is_the_copy_dramatiq_makes_and_encodes_as_dramatiq_does() -> None:
    """``with_redis_id`` is ``message.copy(options=…)`` (the message handed in left as it was), and
    ``encode`` reads back as ``Message.encode`` does, field order included."""
    from dramatiq import Message

    from adapters.async_queue import encode, with_redis_id

    message: Message[Any] = Message(
        "stripe-events", "actor", ({"x": "é", "n": 1.5},), {"k": 1}, {"signature": "s"}, "evt_1", 7
    )
    copied = with_redis_id(message)
    assert copied == message.copy(options={"redis_message_id": copied.options["redis_message_id"]})
    assert type(copied) is Message and message.options == {"signature": "s"}
    assert list(json.loads(encode(copied)).items()) == list(json.loads(copied.encode()).items())


def test_redis_message_ids_are_uuid4_text() -> None:
    """Each enqueue's Redis id is written as ``str(uuid4())`` writes one: version 4, RFC 4122 variant."""
    import uuid

    from adapters.async_queue import uuid4_text

    made = [uuid4_text() for _ in range(200)]
    assert len(set(made)) == 200
    for text in made:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


def test_a_dramatiq_worker_process_logs_through_its_pipe_whole_messages() -> None:
    """Dramatiq's worker processes log into a framed pipe whose ``fileno()`` is real: each line
    must go through its ``write`` (one framed message), never raw onto the descriptor."""
    import logging
    import multiprocessing

    from dramatiq.compat import StreamablePipe

    from adapters.logs import JsonLines

    reader, writer = multiprocessing.Pipe(duplex=False)
    handler = JsonLines(StreamablePipe(writer))
    logger = logging.getLogger("tests.fast_paths.pipe")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        logger.info("from a worker process", extra={"event_id": "evt_1"})
    finally:
        logger.removeHandler(handler)
    assert reader.poll(5)
    line = json.loads(reader.recv_bytes().decode())
    assert (line["msg"], line["event_id"]) == ("from a worker process", "evt_1")
    reader.close()
    writer.close()
