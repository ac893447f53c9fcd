"""``adapters.pipelined`` sends Dramatiq's own dispatch script the arguments Dramatiq itself would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker

from adapters.pipelined import dispatch_args


class RecordingClient:
    """Stands in for redis.Redis: every script call is recorded, never sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], list[Any]]] = []

    def register_script(self, script: bytes) -> Callable[..., Any]:
        def call(args: Any = (), keys: Any = ()) -> int:
            self.calls.append((list(keys), list(args)))
            return 1000  # maxstack's answer, when asked

        return call


@pytest.mark.parametrize("chance", [0, 1_000_000])
def test_the_arguments_are_those_of_redis_broker_dispatch(monkeypatch: pytest.MonkeyPatch, chance: int) -> None:
    client = RecordingClient()
    broker = RedisBroker(client=client, maintenance_chance=chance, heartbeat_timeout=1234, dead_message_ttl=5678)
    monkeypatch.setattr("dramatiq.brokers.redis.current_millis", lambda: 42)
    monkeypatch.setattr("adapters.pipelined.current_millis", lambda: 42)
    broker.do_enqueue("emails", "redis-id", "encoded message")
    keys, args = client.calls[-1]
    assert keys == [broker.namespace]
    assert args == dispatch_args(broker, "enqueue", "emails", "redis-id", "encoded message")
    assert args[:7] == ["enqueue", 42, "emails", broker.broker_id, 1234, 5678, int(chance > 0)]
