"""Record every final failure in ``job_failures`` (docs/data.md#ops-collections).

Dramatiq's dead-letter copy carries the traceback of the attempt before the last (none for
``throws``) and expires after 7 days. This keeps the whole message, the final error and its
traceback, the attempts and the first and last failure times, for ops to read and replay.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Protocol

from dramatiq import Broker
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class FailureLog(Protocol):
    def record(self, message: dict[str, Any], encoded: str, error: BaseException, trace: str) -> None: ...


class RecordFailures(Middleware):
    def __init__(self, failures: FailureLog) -> None:
        self.failures = failures

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is None or not message.failed:
            return
        trace = "".join(traceback.format_exception(exception, limit=30))
        try:
            self.failures.record(message.asdict(), message.encode().decode(), exception, trace)
        except Exception:
            # The dead letter in Redis still holds the message; say loudly that the record is missing.
            log.exception("could not record job failure", extra={"message_id": message.message_id})
