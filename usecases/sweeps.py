"""Finish work a crash or a lost message left behind (the stale-inbox sweep of DESIGN §3).

Every worker runs ``heal`` on a timer; ops show and trigger the same sweep. Both halves are safe to
run anywhere, any number of times: the inbox skips what is done and activation is once-only.

- An event still ``received`` long after its last attempt (its retry was lost, its worker died)
  is queued again from its stored payload.
- A payment ``completed`` but never activated (the process died between the two writes, and no
  event is left to redo it, e.g. after confirm-payment) is activated now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from usecases.activation import activate
from usecases.ports import Deps, EventQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    events_requeued: int
    payments_activated: int


def heal(deps: Deps, queue: EventQueue, older_than: timedelta) -> SweepReport:
    """One pass over stale inbox events and payments awaiting activation; returns what it did."""
    stale = deps.inbox.stale(older_than)
    for payload in stale:
        queue.enqueue_event(payload)
    activated = 0
    for payment in deps.payments.awaiting_activation(older_than):
        try:
            if activate(payment, deps, verified=False, event_id=None) is not None:
                activated += 1
        except Exception:
            # One payment that cannot be activated yet must not keep the others waiting.
            log.exception("sweep could not activate payment %s", payment.intent_id)
    if stale or activated:
        log.warning(
            "sweep healed stale work: %d events requeued, %d payments activated",
            len(stale),
            activated,
            extra={"outcome": "swept"},
        )
    return SweepReport(len(stale), activated)
