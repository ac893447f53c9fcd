"""The success metrics from MongoDB: the ops API and page, ``payments-ops metrics`` and ``/metrics``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from adapters.indexes import ensure_all_indexes
from adapters.mongo import now
from adapters.settings import Settings
from adapters.success_metrics import MongoMetricSnapshots, MongoSuccessFacts
from payments_ops import cli, events
from tests.fakes import mongo_deps
from tests.integration.test_dashboard import HTML, log_in
from tests.integration.test_ops_api import AUTH, TOKEN, app_client
from usecases.inbox import process_event
from usecases.success_metrics import LEASE, CachedMeasure
from workers.middleware.success_metrics import MeasureSuccess

YOGA, CHESS = ObjectId(), ObjectId()


@pytest.fixture
def client(settings: Settings, db: Any) -> Iterator[TestClient]:
    yield from app_client(settings, db, TOKEN)


def seed(db: Any) -> None:
    """Three payments paid in the last hour (one partly refunded, one dispute lost in USD), one failed,
    one still pending, one paid two days ago; four events, one of them found by reconcile."""
    t = now()

    def payment(minutes: float, status: str, service: ObjectId, **more: Any) -> dict[str, Any]:
        at = t - timedelta(minutes=minutes)
        doc = {"_id": ObjectId(), "status": status, "amount": 1000, "currency": "INR", "amountRefunded": 0,
               "serviceId": service, "serviceName": "Yoga" if service == YOGA else "Chess",
               "createdAt": at - timedelta(minutes=1), "updatedAt": at}  # fmt: skip
        return {**doc, **more}

    def at(minutes: float, seconds: float = 0) -> Any:
        return t - timedelta(minutes=minutes) + timedelta(seconds=seconds)

    db.payments.insert_many(
        [
            payment(30, "completed", YOGA, paidAt=at(30), activatedAt=at(30, 2)),
            payment(
                20, "partially_refunded", YOGA, amount=2000, amountRefunded=300, paidAt=at(20), activatedAt=at(20, 4)
            ),
            payment(
                10,
                "dispute_lost",
                CHESS,
                amount=5000,
                currency="USD",
                paidAt=at(10),
                dispute={"status": "lost", "amount": 5000},
            ),
            payment(14, "failed", CHESS),
            payment(5, "pending", CHESS),
            payment(48 * 60, "completed", CHESS, currency="EUR", amount=700, paidAt=at(48 * 60)),
        ]
    )
    db.stripe_events.insert_many(
        [
            {"_id": "evt_1", "receivedAt": at(29), "processedAt": at(29, 1), "source": "webhook"},
            {
                "_id": "evt_2",
                "receivedAt": at(20),
                "processedAt": at(20, 3),
                "status": "processed",
            },  # no source: webhook
            {"_id": "evt_3", "receivedAt": at(10), "processedAt": at(10, 0.5), "source": "reconcile"},
            {"_id": "evt_4", "receivedAt": at(48 * 60), "processedAt": at(48 * 60, 1), "source": "webhook"},
        ]
    )


def counts(metric: dict[str, Any]) -> tuple[Any, ...]:
    return metric["value"], metric["ok"], metric["numerator"], metric["denominator"]


def test_the_api_gives_every_metric_with_its_counts(client: TestClient, db: Any) -> None:
    seed(db)
    body = client.get("/ops/api/success-metrics", headers=AUTH).json()
    assert body["window"] == "24h"
    assert counts(body["paymentSuccessRate"]) == (0.75, False, 3, 4)
    assert counts(body["webhookDeliveryRate"]) == (pytest.approx(2 / 3), False, 2, 3)
    assert counts(body["refundRate"]) == (pytest.approx(1 / 3), False, 1, 3)
    assert counts(body["conversionRate"]) == (0.6, None, 3, 5)
    assert [(s["serviceName"], s["numerator"], s["denominator"]) for s in body["conversionRate"]["byService"]] == [
        ("Yoga", 2, 2) if str(YOGA) < str(CHESS) else ("Chess", 1, 3),
        ("Chess", 1, 3) if str(YOGA) < str(CHESS) else ("Yoga", 2, 2),
    ]
    processing = body["processingSeconds"]
    assert (processing["mean"], processing["p50"], processing["p95"], processing["ok"]) == (
        pytest.approx(1.5),
        pytest.approx(1.0),
        pytest.approx(2.8),
        True,
    )
    assert (body["activationSeconds"]["mean"], body["activationSeconds"]["count"]) == (pytest.approx(3.0), 2)
    assert body["revenue"] == {
        "INR": {"gross": 3000, "refunded": 300, "disputeLost": 0, "net": 2700},
        "USD": {"gross": 5000, "refunded": 0, "disputeLost": 5000, "net": 0},
    }
    assert sum(step["paymentSuccessRate"]["numerator"] for step in body["series"]) == 3
    week = client.get("/ops/api/success-metrics?window=7d", headers=AUTH).json()
    assert counts(week["paymentSuccessRate"])[2:] == (4, 5)
    assert week["revenue"]["EUR"]["net"] == 700 and len(week["series"]) == 8


def test_a_window_other_than_the_four_is_refused_naming_it(client: TestClient) -> None:
    for bad in ("2h", "", "24H"):
        answer = client.get(f"/ops/api/success-metrics?window={bad}", headers=AUTH)
        assert (answer.status_code, answer.json()["error"]["code"], answer.json()["error"]["field"]) == (
            422,
            "validation_error",
            "window",
        )
    assert client.get("/ops/api/success-metrics").status_code == 401


def test_an_event_found_by_reconcile_lowers_the_delivery_rate(client: TestClient, db: Any) -> None:
    """Two events through the inbox as the worker records them: one pushed, one found by reconcile."""
    ensure_all_indexes(db)
    deps = mongo_deps(db)
    for n, source in enumerate(("webhook", "reconcile")):
        foreign = events.payment_intent("payment_intent.succeeded", f"pi_foreign{n}", 100, "INR", {})
        process_event(events.event("payment_intent.succeeded", foreign), deps, source)
    delivery = client.get("/ops/api/success-metrics?window=1h", headers=AUTH).json()["webhookDeliveryRate"]
    assert counts(delivery) == (0.5, False, 1, 2)


def test_the_page_shows_each_metric_against_its_target_without_javascript(client: TestClient, db: Any) -> None:
    seed(db)
    log_in(client)
    page = client.get("/ops/metrics", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html, html[html.index("<script") - 200 : html.index("<script") + 200]
    assert html.count("<svg") == 8  # six metrics, and a net revenue chart per currency
    states = dict(re.findall(r'id="(\w+)" data-state="(\w+)"', html))
    assert states == {
        "paymentSuccessRate": "off",
        "webhookDeliveryRate": "off",
        "processingSeconds": "ok",
        "activationSeconds": "ok",
        "refundRate": "off",
        "conversionRate": "none",
    }
    assert "Off target" in html and "On target" in html and "75.0%" in html
    assert client.get("/ops/metrics?window=nope", headers=HTML).status_code == 422
    assert 'href="/ops/metrics"' in client.get("/ops", headers=HTML).text


def test_the_gauges_on_metrics(client: TestClient, db: Any) -> None:
    seed(db)
    text = client.get("/metrics").text
    assert 'payments_success_metric{metric="payment_success_rate",window="24h"} 0.75' in text
    assert 'payments_success_metric{metric="activation_seconds_mean",window="1h"} 3.0' in text
    assert 'payments_revenue_minor{currency="USD",kind="dispute_lost",window="1h"} 5000.0' in text
    assert 'payments_revenue_minor{currency="INR",kind="net",window="24h"} 2700.0' in text


def test_the_command(settings: Settings, db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    seed(db)
    monkeypatch.chdir(tmp_path)
    for name, value in {"REDIS_URL": settings.redis_url, "MONGODB_URI": settings.mongodb_uri,
                        "MONGODB_DB": settings.mongodb_db, "STRIPE_SECRET_KEY": settings.stripe_secret_key,
                        "STRIPE_WEBHOOK_SECRET": "whsec_cli", "JWT_SECRET": "cli-secret"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert cli.main(["metrics", "--window", "7d", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["window"], counts(body["paymentSuccessRate"])[2:]) == ("7d", (4, 5))
    assert cli.main(["metrics"]) == 0
    out = capsys.readouterr().out
    assert "last 24h" in out and "75.0%" in out and "OFF TARGET" in out and "net 2700" in out
    assert cli.main(["metrics", "--window", "2h"]) == 2
    assert "window" in capsys.readouterr().err


def test_a_restarted_ingress_serves_the_kept_measurement_at_once(settings: Settings, db: Any) -> None:
    """The measurement outlives the process: a new ingress serves it without reading the payments again."""
    seed(db)
    for client in app_client(settings, db, TOKEN):
        assert counts(client.get("/ops/api/success-metrics", headers=AUTH).json()["paymentSuccessRate"])[2:] == (3, 4)
    db.payments.delete_many({})  # a fresh read would now find nothing
    for client in app_client(settings, db, TOKEN):
        assert counts(client.get("/ops/api/success-metrics", headers=AUTH).json()["paymentSuccessRate"])[2:] == (3, 4)
        assert (
            client.get("/ops/api/success-metrics?window=1h", headers=AUTH).json()["paymentSuccessRate"]["value"] is None
        )


def test_kept_measurements_claim_each_window_for_one_process_and_keep_the_newest(db: Any) -> None:
    snapshots, at = MongoMetricSnapshots(db), now()
    assert snapshots.load("24h") is None
    assert snapshots.claim("24h", "worker-a", at, LEASE)  # the first claim creates the window's document
    assert not snapshots.claim("24h", "worker-b", at + timedelta(minutes=1), LEASE)
    snapshots.save("24h", at, {"window": "24h", "byService": [{"serviceName": "a.b $c"}]})
    assert snapshots.claim("24h", "worker-b", at + timedelta(minutes=1), LEASE)  # saving let the claim go
    snapshots.save("24h", at - timedelta(seconds=5), {"window": "older"})  # finished late: not kept
    measured_at, result = snapshots.load("24h") or (None, {})
    assert result == {"window": "24h", "byService": [{"serviceName": "a.b $c"}]}
    assert measured_at is not None and abs(measured_at - at) < timedelta(milliseconds=1)
    assert not snapshots.claim("24h", "worker-c", at + LEASE, LEASE)  # worker-b's lease runs to 1 min + LEASE
    assert snapshots.claim("24h", "worker-c", at + timedelta(minutes=1) + LEASE, LEASE)


def test_a_workers_round_measures_each_stale_window_once(db: Any) -> None:
    seed(db)
    measured = CachedMeasure(MongoSuccessFacts(db), MongoMetricSnapshots(db), "worker-x")
    timer = MeasureSuccess(measured)
    timer.round(None)  # type: ignore[arg-type]  # the round never uses the broker
    kept = {doc["_id"]: doc for doc in db.success_metrics.find()}
    assert set(kept) == {"1h", "24h", "7d", "30d"} and all(doc["claimUntil"] is None for doc in kept.values())
    assert json.loads(kept["24h"]["result"])["paymentSuccessRate"]["numerator"] == 3
    timer.round(None)  # type: ignore[arg-type]  # all fresh: nothing measured again
    assert {doc["_id"]: doc["measuredAt"] for doc in db.success_metrics.find()} == {
        name: doc["measuredAt"] for name, doc in kept.items()
    }
