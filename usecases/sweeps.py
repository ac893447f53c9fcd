"""Finish work a crash or a lost message left behind (the stale-inbox sweep of DESIGN §3).

Every worker runs ``heal`` on a timer; ops show and trigger the same sweep. Both halves are safe to
run anywhere, any number of times: the inbox skips what is done and activation is once-only.

- An event still ``received`` long after its last attempt (its retry was lost, its worker died)
  is queued again from its stored payload.
- A refund request still ``pending`` with no Stripe refund long after it was made (the request's
  message was lost, or the ingress died between the reservation and the enqueue) is queued again.
- A payment ``completed`` but never activated (the process died between the two writes, and no
  event is left to redo it, e.g. after confirm-payment) is activated now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from usecases.activation import activate
from usecases.ports import Deps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    events_requeued: int
    payments_activated: int
    refunds_requeued: int


def heal(deps: Deps, older_than: timedelta) -> SweepReport:
    """One pass over stale inbox events, payments awaiting activation and refund requests; returns what it did."""
    stale = deps.inbox.stale(older_than)
    for payload in stale:
        deps.jobs.enqueue_event(payload)
    requests = deps.refunds.stale_requests(older_than)
    for intent_id, request_id in requests:
        deps.jobs.enqueue_refund(intent_id, request_id)
    activated = 0
    for payment in deps.payments.awaiting_activation(older_than):
        try:
            if activate(payment, deps, verified=False, event_id=None) is not None:
                activated += 1
        except Exception:
            # One payment that cannot be activated yet must not keep the others waiting.
            log.exception("sweep could not activate payment %s", payment.intent_id)
    if stale or activated or requests:
        log.warning(
            "sweep healed stale work: %d events requeued, %d payments activated, %d refund requests requeued",
            len(stale),
            activated,
            len(requests),
            extra={"outcome": "swept"},
        )
    return SweepReport(len(stale), activated, len(requests))
