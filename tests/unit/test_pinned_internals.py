"""The libraries whose internals the code touches are pinned, and a changed internal fails loudly at start."""

from __future__ import annotations

import logging
import threading
import tomllib
from importlib.metadata import version
from pathlib import Path
from queue import PriorityQueue
from types import SimpleNamespace
from typing import Any

import localstripe.resources
import pytest
import redis.asyncio.connection
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries
from dramatiq.worker import Worker
from mongomock.store import CollectionStore

from adapters import async_queue
from adapters.compat.dramatiq import DRAMATIQ_PINNED, check_dramatiq_internals
from adapters.compat.redis import REDIS_WRITTEN_FOR, check_redis_internals
from adapters.queue import Broker
from adapters.signing import Signer
from devstack import localstripe_server
from devstack.mongo_standin import __main__ as standin_main
from devstack.mongo_standin.internals import MONGOMOCK_PINNED, check_mongomock_internals
from tests.support import wait_for
from workers.middleware.stranded import RequeueStrandedDelays

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def requirements() -> set[str]:
    """The requirement strings of pyproject.toml's dependencies and ``dev`` extra."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return {*project["dependencies"], *project["optional-dependencies"]["dev"]}


def test_dramatiq_internals_are_those_of_the_pinned_version() -> None:
    """The installed Dramatiq is the pinned one and has every internal ``adapters/compat/dramatiq.py`` uses."""
    assert f"dramatiq[redis]=={DRAMATIQ_PINNED}" in requirements() and version("dramatiq") == DRAMATIQ_PINNED
    broker = RedisBroker()  # connects lazily: no Redis needed
    try:
        check_dramatiq_internals(broker, Worker(broker))
    finally:
        broker.close()


def test_a_missing_dramatiq_internal_stops_the_worker_at_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``RedisBroker.__getattr__`` (``do_requeue``) the check names it, and no watcher starts."""
    broker = RedisBroker()
    monkeypatch.delattr(RedisBroker, "__getattr__", raising=True)
    middleware = RequeueStrandedDelays()
    try:
        with pytest.raises(RuntimeError) as error:
            middleware.after_worker_boot(broker, Worker(broker))
    finally:
        broker.close()
    message = str(error.value)
    assert message.startswith("dramatiq internals changed: RedisBroker has no __getattr__ (for broker.do_requeue)")
    assert f"compat/dramatiq.py was written for dramatiq {DRAMATIQ_PINNED} (pinned in pyproject.toml" in message
    assert middleware._thread is None


def test_a_dramatiq_internal_that_no_longer_does_what_is_assumed_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``Retries`` whose re-enqueue no longer goes through the broker it is handed fails the check."""
    check_dramatiq_internals()  # read once before the change: the check reads the replaced method afresh
    monkeypatch.setattr(Retries, "after_process_message", lambda self, broker, message, **kw: None)
    with pytest.raises(RuntimeError, match=r"^dramatiq internals changed: Retries\.after_process_message no longer"):
        check_dramatiq_internals()


def test_redis_internals_are_those_it_was_written_for() -> None:
    """The installed redis-py is within pyproject.toml's bound and has what ``adapters/compat/redis.py`` uses."""
    bound = next(r for r in requirements() if r.startswith("redis[hiredis]"))
    major = int(version("redis").split(".")[0])
    assert f"<{major + 1}" in bound and version("redis").startswith(REDIS_WRITTEN_FOR.split(".")[0])
    check_redis_internals()


def test_a_missing_redis_internal_stops_the_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    """An asyncio connection without ``_parser`` is named, and the webhook's enqueuer is not built."""
    no_parser = lambda self, parser_class: setattr(self, "_parser", None)  # noqa: E731
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "set_parser", no_parser)
    with pytest.raises(RuntimeError) as error:
        check_redis_internals()
    message = str(error.value)
    assert message.startswith("redis-py internals changed: an asyncio Connection has no _parser")
    assert f"adapters/compat/redis.py was written for redis-py {REDIS_WRITTEN_FOR}" in message
    broker = Broker(Signer((b"k",)), url="redis://127.0.0.1:9/0")  # connects lazily: never here
    try:
        with pytest.raises(RuntimeError, match=r"^redis-py internals changed"):
            async_queue.build_enqueuer(SimpleNamespace(redis_url="redis://127.0.0.1:9/0"), broker)  # type: ignore[arg-type]
    finally:
        broker.close()


def test_mongomock_internals_are_those_of_the_pinned_version() -> None:
    """The installed mongomock is the pinned one and has every internal the stand-in uses."""
    assert f"mongomock=={MONGOMOCK_PINNED}" in requirements() and version("mongomock") == MONGOMOCK_PINNED
    check_mongomock_internals()


def test_a_missing_mongomock_internal_stops_the_standin(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ``CollectionStore._remove_expired_documents`` the check names it and the server exits 1."""
    monkeypatch.delattr(CollectionStore, "_remove_expired_documents", raising=True)
    with pytest.raises(RuntimeError) as error:
        check_mongomock_internals()
    message = str(error.value)
    assert message.startswith("mongomock internals changed: CollectionStore has no _remove_expired_documents")
    assert f"mongomock {MONGOMOCK_PINNED} (pinned in pyproject.toml" in message
    assert standin_main.main(["--port", "0"]) == 1
    assert message in caplog.text


def test_localstripe_internals_are_those_of_the_pinned_version() -> None:
    """The installed localstripe is the pinned one and has every internal ``localstripe_server.py`` uses."""
    pinned = localstripe_server.LOCALSTRIPE_PINNED
    assert f"localstripe=={pinned}" in requirements() and version("localstripe") == pinned
    localstripe_server.check_localstripe_internals()


def test_a_missing_localstripe_internal_stops_the_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Without ``Store.dump_to_disk`` the check names it and the server exits 1 before serving."""
    monkeypatch.delattr(localstripe.resources.Store, "dump_to_disk", raising=True)
    with pytest.raises(RuntimeError) as error:
        localstripe_server.check_localstripe_internals()
    message = str(error.value)
    assert message.startswith("localstripe internals changed: Store has no dump_to_disk")
    assert f"localstripe {localstripe_server.LOCALSTRIPE_PINNED} (pinned in pyproject.toml" in message
    assert localstripe_server.main(["--port", "0", "--state", str(tmp_path / "state.pickle")]) == 1
    assert message in caplog.text


class FlakyWorker:
    """A worker with one delay consumer whose ``consumers`` raises once, as a changed Dramatiq would."""

    def __init__(self, failing_read: int) -> None:
        self.reads = 0
        self.failing_read = failing_read
        self.consumer = SimpleNamespace(delay_queue=PriorityQueue[Any]())

    @property
    def consumers(self) -> dict[str, Any]:
        self.reads += 1
        if self.reads == self.failing_read:
            raise AttributeError("'Worker' object has no attribute 'consumers'")
        return {"default.DQ": self.consumer}


class FakeBroker:
    """The Redis side of a requeue: one message in the ack set, requeues recorded."""

    namespace = "dramatiq"
    broker_id = "broker-1"

    def __init__(self) -> None:
        self.client = self
        self.requeued: list[tuple[str, ...]] = []

    def smembers(self, key: str) -> set[bytes]:
        return {b"message-1"} if key == "dramatiq:__acks__.broker-1.default.DQ" else set()

    def do_requeue(self, queue_name: str, *message_ids: str) -> None:
        self.requeued.append((queue_name, *message_ids))


def test_the_watcher_survives_an_unexpected_error_in_a_round(caplog: pytest.LogCaptureFixture) -> None:
    """A round that raises (not a RedisError) is logged with its traceback and the next rounds still requeue."""
    caplog.set_level(logging.WARNING, logger="workers.middleware.stranded")
    broker, worker = FakeBroker(), FlakyWorker(failing_read=2)  # read 1: first round; read 2: fails
    middleware = RequeueStrandedDelays(interval=0.01)
    watcher = threading.Thread(target=middleware._watch, args=(broker, worker), daemon=True)
    watcher.start()
    try:
        wait_for(lambda: worker.reads >= 4, timeout=5, what="two rounds after the failing one")
        worker.consumer.delay_queue = PriorityQueue()  # the consumer lost its connection
        wait_for(lambda: broker.requeued, timeout=5, what="the stranded message to be requeued")
    finally:
        middleware.before_worker_shutdown(broker, worker)  # type: ignore[arg-type]
        watcher.join(timeout=5)
    assert not watcher.is_alive()
    assert broker.requeued[0] == ("default.DQ", "message-1")
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "RequeueStrandedDelays" in failures[0].getMessage()
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is AttributeError
