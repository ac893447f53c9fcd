"""Put the message id, actor and queue on every log line written while a message is processed.

Failed attempts are logged here too, with ids and the error, never the message's arguments.
"""

from __future__ import annotations

import logging
import threading
from contextvars import Token
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware

from adapters import logs

log = logging.getLogger(__name__)


class LogContext(Middleware):
    def __init__(self) -> None:
        self._tokens = threading.local()

    def before_process_message(self, broker: Broker, message: Any) -> None:
        self._tokens.token = logs.push(
            message_id=message.message_id, actor=message.actor_name, queue=message.queue_name
        )

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is not None:
            # Dramatiq's own line prints the message with its arguments (customer data), so it is
            # silenced in configure_logging and the failure is logged here with ids only.
            log.warning("attempt failed", extra={"error": f"{type(exception).__name__}: {exception}"})
        self._reset()

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        self._reset()

    def _reset(self) -> None:
        token: Token[dict[str, str]] | None = getattr(self._tokens, "token", None)
        if token is not None:
            logs.pop(token)
            self._tokens.token = None
