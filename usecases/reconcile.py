"""Reconcile with Stripe: recover what a lost webhook or a lost message left undone (docs/operations.md#reconcile).

Stripe keeps events for 30 days and does not deliver in order, so "since the newest processed"
would miss older lost events: the window starts at the earlier of ``window`` ago and the oldest
event not yet processed, less an overlap. Every handled event type is listed (one type a call:
the local Stripe filters by one type) and each event the inbox has not finished is queued; the
inbox skips what is done. Events fetched from Stripe's API are trusted as they come (the API is
authenticated). Payments left ``pending``/``processing`` for long are then asked of Stripe
directly and brought to its state (``settle_with_stripe``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import RetryLater
from domain.success_metrics import RECONCILE
from usecases.activation import settle_with_stripe
from usecases.handlers import SUBSCRIBED
from usecases.ports import Deps

log = logging.getLogger(__name__)

#: Inbox statuses after which an event needs nothing more (a purged one was dropped by ops for good).
FINISHED = frozenset({"processed", "ignored", "purged"})


@dataclass(frozen=True)
class ReconcileReport:
    since: datetime
    events_seen: int
    events_enqueued: int
    payments_checked: int
    payments_moved: int


def window_start(deps: Deps, now: datetime, window: timedelta, overlap: timedelta) -> datetime:
    """Where listing starts: the earlier of ``window`` ago and the oldest unfinished event, less ``overlap``."""
    oldest = deps.inbox.oldest_unfinished()
    start = now - window if oldest is None else min(now - window, oldest)
    return start - overlap


def reconcile(
    deps: Deps,
    *,
    now: datetime,
    since: datetime | None = None,
    window: timedelta = timedelta(days=3),
    overlap: timedelta = timedelta(hours=1),
    stuck_after: timedelta = timedelta(minutes=30),
) -> ReconcileReport:
    """List Stripe's events since the window start, queue those not finished, settle stuck payments."""
    start = since or window_start(deps, now, window, overlap)
    seen = queued = 0
    for event_type in sorted(SUBSCRIBED):
        for event in deps.stripe.list_events(event_type, int(start.timestamp())):
            seen += 1
            if deps.inbox.status_of(str(event.get("id"))) not in FINISHED:
                deps.jobs.enqueue_event(event, source=RECONCILE)
                queued += 1
    checked = moved = 0
    for payment in deps.payments.stuck(stuck_after):
        checked += 1
        try:
            intent = deps.stripe.retrieve_payment_intent(payment.intent_id)
            after, _ = settle_with_stripe(payment, intent, deps, observed_at=now)
        except RetryLater as error:  # it changed under us: the next run looks again
            log.warning("payment not settled with Stripe", extra={"payment_id": payment.intent_id, "error": str(error)})
            continue
        moved += after.status != payment.status
    log.info("reconciled: %d events seen, %d queued, %d stuck payments checked", seen, queued, checked)
    return ReconcileReport(start, seen, queued, checked, moved)
