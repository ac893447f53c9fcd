"""Act only on messages the project enqueued: each must carry a valid HMAC (DESIGN §5).

The ingress signs a Stripe event after verifying Stripe's signature; every other enqueuer (the
outbox, the sweeps, retries, ops) signs with the same key through ``adapters.queue``. A message
that does not verify (written straight into Redis, or changed there) is never executed: it goes
to the dead letters at once with the reason, and ``job_failures`` records it.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from dramatiq import Broker
from dramatiq.middleware import Middleware, MiddlewareError

from adapters.queue import SIGNATURE, signature
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
        given = message.options.get(SIGNATURE)
        if not isinstance(given, str):
            raise Unsigned("message carries no signature: not enqueued by this service")
        expected = signature(self.key, message.actor_name, message.args, message.kwargs)
        if not hmac.compare_digest(given, expected):
            raise Unsigned("message signature does not verify: changed after it was enqueued, or another key")
