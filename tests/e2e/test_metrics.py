"""``/metrics`` of the running stack: the ingress shows what the worker processes counted (multiprocess mode)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.send_event import seed_payment
from devstack.stack import Stack
from payments_ops import events
from tests.support import signed, wait_for

SUCCEEDED = "payment_intent.succeeded"


def counted(http: httpx.Client, name: str, **labels: str) -> float:
    """The value of one sample of the ingress's ``/metrics``, parsed by prometheus_client (0 if absent)."""
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_the_ingress_metrics_show_the_worker_s_processed_event(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """After one signed webhook, the ingress's /metrics counts it enqueued and the worker's processed event."""
    processed = {"type": SUCCEEDED, "outcome": "processed"}
    enqueued_before = counted(http, "payments_webhooks_total", outcome="enqueued")
    processed_before = counted(http, "payments_events_total", **processed)
    intent_id = events.new_id("pi")
    intent = events.payment_intent(SUCCEEDED, intent_id, 49900, "INR", seed_payment(stack_db, intent_id))
    body, headers = signed(events.event(SUCCEEDED, intent), stack.webhook_secret)
    assert http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    wait_for(
        lambda: counted(http, "payments_events_total", **processed) == processed_before + 1,
        what="the worker's processed event in the ingress's /metrics",
    )
    assert counted(http, "payments_webhooks_total", outcome="enqueued") == enqueued_before + 1
    assert (stack.var / "metrics").is_dir() and any((stack.var / "metrics").glob("*.db"))
