"""Finish work a crash or a lost message left behind (docs/operations.md#sweeps-and-stuck-work).

Every worker runs ``heal`` on a timer; ops show and trigger the same sweep. Both halves are safe to
run anywhere, any number of times: the inbox skips what is done and activation is once-only.

- An event still ``received`` long after its last attempt (its retry was lost, its worker died)
  is queued again from its stored payload.
- A refund request still ``pending`` with no Stripe refund long after it was made (the request's
  message was lost, or the ingress died between the reservation and the enqueue) is queued again,
  by one worker once per ``older_than``, at most ``max_refund_requeues`` times; then it is failed,
  its hold given back, and ops and the requester are told (``usecases.refunds.retry_stale_request``).
- A refund counted or failed whose follow-ups were never done (a worker killed right after the
  money moved, and no redelivery finished it) is finished: the payment's status, the enrollment
  of a full refund cancelled, the emails queued (``usecases.refunds.finish_refund``).
- A payment ``completed`` but never activated (the process died between the two writes, and no
  event is left to redo it, e.g. after confirm-payment) is activated now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from usecases.activation import activate
from usecases.ports import Deps
from usecases.refunds import GAVE_UP, REQUEUED, finish_refund, retry_stale_request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    events_requeued: int
    payments_activated: int
    refunds_requeued: int
    refunds_failed: int = 0
    refunds_finished: int = 0


def heal(deps: Deps, older_than: timedelta, *, max_refund_requeues: int = 10) -> SweepReport:
    """One pass over stale inbox events, payments awaiting activation and refunds; returns what it did."""
    stale = deps.inbox.stale(older_than)
    for payload in stale:
        deps.jobs.enqueue_event(payload)
    requeued = failed = 0
    for intent_id, request_id in deps.refunds.stale_requests(older_than):
        try:
            outcome = retry_stale_request(
                intent_id, request_id, deps, older_than=older_than, max_requeues=max_refund_requeues
            )
        except Exception:
            log.exception("sweep could not requeue refund request %s of %s", request_id, intent_id)
            continue
        requeued += outcome == REQUEUED
        failed += outcome == GAVE_UP
    finished = 0
    for intent_id, request, refund in deps.refunds.unfinished(older_than):
        try:
            finished += finish_refund(intent_id, request, refund, deps)
        except Exception:
            log.exception("sweep could not finish refund %s of %s", refund or request, intent_id)
    activated = 0
    for payment in deps.payments.awaiting_activation(older_than):
        try:
            if activate(payment, deps, verified=False, event_id=None) is not None:
                activated += 1
        except Exception:
            # One payment that cannot be activated yet must not keep the others waiting.
            log.exception("sweep could not activate payment %s", payment.intent_id)
    if stale or activated or requeued or failed or finished:
        log.warning(
            "sweep healed stale work: %d events requeued, %d payments activated, %d refund requests requeued, "
            "%d failed, %d refunds finished",
            len(stale),
            activated,
            requeued,
            failed,
            finished,
            extra={"outcome": "swept"},
        )
    return SweepReport(len(stale), activated, requeued, failed, finished)
