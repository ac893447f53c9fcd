"""Put the message id, actor and queue on every log line written while a message is processed."""

from __future__ import annotations

import threading
from contextvars import Token
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware

from adapters import logs


class LogContext(Middleware):
    def __init__(self) -> None:
        self._tokens = threading.local()

    def before_process_message(self, broker: Broker, message: Any) -> None:
        self._tokens.token = logs.push(
            message_id=message.message_id, actor=message.actor_name, queue=message.queue_name
        )

    def after_process_message(self, broker: Broker, message: Any, **_: Any) -> None:
        self._reset()

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        self._reset()

    def _reset(self) -> None:
        token: Token[dict[str, str]] | None = getattr(self._tokens, "token", None)
        if token is not None:
            logs.pop(token)
            self._tokens.token = None
