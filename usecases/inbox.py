"""Process one Stripe event exactly once in effect: record, skip what is done, dispatch."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from domain.errors import PermanentError
from domain.events import StripeEvent, event_id_of
from domain.success_metrics import SOURCES, WEBHOOK
from usecases.handlers import HANDLERS
from usecases.ports import Deps
from usecases.transitions import IGNORED, PROCESSED

log = logging.getLogger(__name__)

#: Ops purged the event's failed job for good: finished, never processed again by a redelivery,
#: reconcile, the stale-work sweep or a requeue of stuck work.
PURGED = "purged"
#: Inbox statuses after which a redelivery changes nothing.
DONE = frozenset({PROCESSED, IGNORED, PURGED})


def process_event(payload: Mapping[str, Any], deps: Deps, source: str = WEBHOOK) -> str:
    """Handle one delivery of a Stripe event and return its inbox status.

    Raises ``PermanentError`` for an event that can never be handled (recorded ``failed``) and
    lets every other exception through so the queue retries the message. An event whose fields
    do not fit is recorded ``failed`` too, before anything acts on it, as long as it has an id.
    ``source``: how the event came (``webhook``, or ``reconcile`` that found it); the first arrival's is kept.
    """
    source = source if source in SOURCES else WEBHOOK
    try:
        event = StripeEvent.parse(payload)
    except PermanentError as error:
        event_id = event_id_of(payload)
        if event_id is not None:
            deps.inbox.reject(event_id, payload, str(error), source)
        raise
    status = deps.inbox.receive(event, source)
    if status in DONE:
        log.info("event already done", extra={"outcome": "duplicate", "status": status})
        return status
    handler = HANDLERS.get(event.type)
    if handler is None:
        # Reached only through a replay or reconcile of a type nobody handles.
        deps.inbox.finish(event.id, IGNORED)
        return IGNORED
    try:
        outcome = handler(event, deps)
    except PermanentError as error:
        deps.inbox.fail(event.id, str(error))
        raise
    deps.inbox.finish(event.id, outcome)
    log.info("event handled", extra={"outcome": outcome})
    return outcome
