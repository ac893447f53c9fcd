"""``GET /metrics``: Prometheus text whose counters move with the traffic; ``METRICS_TOKEN`` guards it.

The metrics: docs/api.md#metrics.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from adapters.queue import REFUNDS_ACTOR, STRIPE_EVENTS_QUEUE, Broker, event_message, refund_message, send
from adapters.settings import Settings
from devstack.procs import Child, free_port, python_module
from ingress.composition import create_app
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.support import signed, wait_for
from workers.composition import Worker

SECRET = "whsec_integration"
HOST = "127.0.0.1"
SUCCEEDED = "payment_intent.succeeded"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by name and labels, through prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[str]:
    """An SMTP sink child writing into this test's tmp dir; its URL."""
    port = free_port()
    argv = python_module("devstack.smtp_sink", "--host", HOST, "--port", str(port), "--dir", str(tmp_path / "mail"))
    child = Child("smtp_sink", argv, tmp_path).start()
    child.wait_tcp(HOST, port)
    yield f"smtp://{HOST}:{port}"
    child.stop()


@pytest.fixture
def settings(settings: Settings, smtp: str) -> Settings:
    """The suite's settings with the sink as SMTP server, so the in-process worker's emails are sent."""
    return dataclasses.replace(settings, smtp_url=smtp)


@pytest.fixture
def client(settings: Settings, worker: Worker, db: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings, broker=worker.broker, db=db)) as client:
        yield client


def test_counters_move_with_the_traffic(client: TestClient, worker: Worker, db: Any) -> None:
    """Webhooks by outcome, processed/retried/dead events, emails sent and refunds failed each move by their amount."""
    before = scrape(client)
    payment = pending_payment(events.new_id("pi"))
    db.payments.insert_one(payment)
    intent = events.payment_intent(
        SUCCEEDED, payment["paymentId"], payment["amount"], "INR", events.intent_metadata(payment)
    )
    body, headers = signed(events.event(SUCCEEDED, intent), SECRET)
    assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
    ignored, ignored_headers = signed(events.event("customer.created", {"id": "cus_1", "object": "customer"}), SECRET)
    assert client.post("/api/webhooks/stripe", content=ignored, headers=ignored_headers).status_code == 200
    forged, forged_headers = signed(events.event(SUCCEEDED, intent), "whsec_attacker")
    assert client.post("/api/webhooks/stripe", content=forged, headers=forged_headers).status_code == 400
    # Retried twice (RETRY_MAX_RETRIES=2), then dead: an event for a payment we never stored.
    unknown = events.payment_intent(SUCCEEDED, events.new_id("pi"), 100, "INR", {"source": events.SOURCE})
    send(worker.broker, event_message(events.event(SUCCEEDED, unknown)))
    send(worker.broker, refund_message("pi_nothing", "no-such-request"))  # PermanentError: dead at once

    after = before

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def settled() -> bool:
        nonlocal after
        after = scrape(client)
        return (
            moved("payments_events_total", type=SUCCEEDED, outcome="processed") == 1
            and moved("payments_events_total", type=SUCCEEDED, outcome="dead") == 1
            and moved("payments_emails_total", outcome="sent") == 2
            and moved("payments_refunds_total", outcome="failed") == 1
        )

    wait_for(settled, 20, "the worker's counters")
    assert moved("payments_webhooks_total", outcome="enqueued") == 1
    assert moved("payments_webhooks_total", outcome="ignored") == 1
    assert moved("payments_webhooks_total", outcome="invalid_signature") == 1
    assert moved("payments_webhooks_total", outcome="broker_unavailable") == 0
    assert moved("payments_webhook_enqueue_seconds_count") == 1
    assert moved("payments_events_total", type=SUCCEEDED, outcome="retry") == 2
    assert moved("payments_messages_retried_total", actor="process_stripe_event") == 2
    assert moved("payments_messages_dead_total", actor="process_stripe_event") == 1
    assert moved("payments_messages_dead_total", actor=REFUNDS_ACTOR) == 1
    assert moved("payments_event_processing_seconds_count", type=SUCCEEDED) == 4  # 1 + 3 attempts
    assert moved("payments_emails_total", outcome="failed") == 0
    dead = {"queue": STRIPE_EVENTS_QUEUE, "state": "dead"}
    wait_for(lambda: value(scrape(client), "payments_queue_messages", **dead) == 1, what="the dead letter's depth")


def test_queue_depths_are_read_at_scrape_time(settings: Settings, broker: Broker, db: Any) -> None:
    """An enqueued webhook nobody consumed shows as one ready message of the stripe-events queue."""
    with TestClient(create_app(settings, broker=broker, db=db)) as client:
        assert value(scrape(client), "payments_queue_messages", queue=STRIPE_EVENTS_QUEUE, state="ready") == 0
        body, headers = signed(events.event("charge.refunded", {"id": "ch_1", "object": "charge"}), SECRET)
        assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200
        samples = scrape(client)
    assert value(samples, "payments_queue_messages", queue=STRIPE_EVENTS_QUEUE, state="ready") == 1
    assert {"ready", "delayed", "in_flight", "dead"} <= {
        dict(labels)["state"] for name, labels in samples if name == "payments_queue_messages"
    }


def test_with_redis_down_the_scrape_answers_and_counts_the_refused_delivery(settings: Settings, db: Any) -> None:
    """The 503 broker_unavailable delivery is counted, and the scrape answers without queue depths."""
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(down, db=db)) as client:
        before = scrape(client)
        body, headers = signed(events.event(SUCCEEDED, {"id": "pi_1", "object": "payment_intent"}), SECRET)
        assert client.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 503
        after = scrape(client)
    outcome = {"outcome": "broker_unavailable"}
    assert value(after, "payments_webhooks_total", **outcome) - value(before, "payments_webhooks_total", **outcome) == 1
    assert not any(name == "payments_queue_messages" for name, _ in after)


def test_the_metrics_token_guards_the_route_when_set(settings: Settings, broker: Broker, db: Any) -> None:
    """With METRICS_TOKEN set, only its bearer gets the text; no token or another (the ops token) is a JSON 401."""
    token, ops = "m" * 32, "o" * 32
    guarded = dataclasses.replace(settings, metrics_token=token, ops_token=ops)
    with TestClient(create_app(guarded, broker=broker, db=db)) as client:
        refused = [client.get("/metrics", headers=h) for h in ({}, {"Authorization": f"Bearer {ops}"})]
        assert "payments_webhooks_total" in str(scrape(client, Authorization=f"Bearer {token}"))
    for response in refused:
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


INCREMENT = "from adapters import metrics; metrics.WEBHOOKS.labels('enqueued').inc()"
EXPOSE = "import sys; from adapters import metrics; sys.stdout.write(metrics.exposition()[0].decode())"


def test_multiprocess_mode_adds_up_every_process_sharing_the_directory(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, a scrape in a third process shows what two other processes counted."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}

    def run(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout

    run(INCREMENT)
    run(INCREMENT)
    samples = parse(run(EXPOSE))
    assert value(samples, "payments_webhooks_total", outcome="enqueued") == 2
    assert value(samples, "payments_webhooks_total", outcome="ignored") == 0
