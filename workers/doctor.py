"""The doctor's probe actor: ``payments-ops doctor`` proves the queue signing key is shared with it."""

from __future__ import annotations

from typing import Any

import dramatiq

from adapters.probe import PROBE_ACTOR, PROBE_QUEUE, record_probe
from workers.broker import WorkerBroker


def declare_probe_actor(broker: WorkerBroker) -> dramatiq.Actor[Any, Any]:
    """Run once, no retry: a probe that fails is simply not answered, and the doctor says so."""

    def doctor_probe(probe_id: str) -> None:
        record_probe(broker.client, probe_id, broker.broker_id)

    return dramatiq.actor(actor_name=PROBE_ACTOR, queue_name=PROBE_QUEUE, broker=broker, max_retries=0)(doctor_probe)
