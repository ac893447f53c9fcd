"""Act only on messages the project enqueued: each must carry a valid HMAC (DESIGN §5).

The ingress signs a Stripe event after verifying Stripe's signature; every other enqueuer (the
outbox, the sweeps, retries, ops) signs with the same key through ``adapters.queue``. A message
that does not verify (written straight into Redis, or changed there) is never executed: it goes
to the dead letters at once with the reason, and ``job_failures`` records it.
"""

from __future__ import annotations

import logging
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware, MiddlewareError

from adapters.queue import refusal
from domain.errors import PermanentError

log = logging.getLogger(__name__)


class Unsigned(PermanentError, MiddlewareError):
    """A message without a valid signature: dead-lettered, never retried, never executed.

    A ``MiddlewareError``, because Dramatiq logs and swallows any other exception raised in a
    ``before_`` hook (and would then run the actor); as a ``PermanentError`` the actors' ``throws``
    fails it at once.
    """


class VerifySignatures(Middleware):
    def __init__(self, key: bytes) -> None:
        self.key = key

    def before_process_message(self, broker: Broker, message: Any) -> None:
        reason = refusal(self.key, message)
        if reason is not None:
            raise Unsigned(reason)
