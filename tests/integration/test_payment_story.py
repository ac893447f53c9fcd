"""A payment's whole story: ``/ops/api/payments`` (search, one story), the dashboard's pages and
``payments-ops payment``, on the test MongoDB; Stripe a dumb store of views, or unreachable."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import stripe
from bson import ObjectId
from starlette.testclient import TestClient

from adapters.failures import MongoFailures
from adapters.indexes import ensure_all_indexes
from adapters.outbox import MongoOutbox
from adapters.queue import Broker, build_broker
from adapters.settings import Settings
from adapters.stripe_gateway import StripeGateway
from devstack.procs import free_port
from ingress.composition import create_app
from payments_ops import events
from payments_ops.simulate import pending_payment
from tests.fakes import mongo_deps
from tests.integration.api_support import FakeGateway, api_settings
from tests.integration.test_dashboard import HTML, log_in
from tests.integration.test_ops import ROOT, cli_env, failing_events
from tests.integration.test_ops_api import AUTH, TOKEN
from tests.support import wait_for
from usecases.inbox import process_event
from usecases.ports import StripeUnavailable
from workers.composition import Worker

STORY_KEYS = {"payment", "stripe", "stripeError", "events", "failures", "emails", "enrollment", "audit", "timeline",
              "diagnosis"}  # fmt: skip
ROW_KEYS = {"paymentId", "customerEmail", "serviceName", "amount", "currency", "status", "createdAt"}


class StoredStripe(FakeGateway):
    """Stripe's views of intents, by id, as tests store them; ``down`` makes every read fail as a dead Stripe."""

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, Mapping[str, Any]] = {}
        self.down = False

    def payment_view(self, intent_id: str) -> Mapping[str, Any]:
        if self.down or intent_id not in self.views:
            raise StripeUnavailable("APIConnectionError: Stripe could not be reached")
        return self.views[intent_id]


def serve(settings: Settings, db: Any, gateway: StripeGateway, token: str | None = TOKEN) -> Iterator[TestClient]:
    broker = build_broker(settings)
    tuned = dataclasses.replace(api_settings(settings), ops_token=token)
    with TestClient(create_app(tuned, broker=broker, db=db, stripe_gateway=gateway)) as client:
        yield client
    broker.close()


@pytest.fixture
def stripe_views() -> StoredStripe:
    return StoredStripe()


@pytest.fixture
def client(settings: Settings, db: Any, stripe_views: StoredStripe) -> Iterator[TestClient]:
    yield from serve(settings, db, stripe_views)


def view_of(intent: Mapping[str, Any], refunds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Stripe's view of a paid intent, as the gateway gives it, with these refunds."""
    refunded = sum(r["amount"] for r in refunds or [])
    charge = {"id": intent["latest_charge"], "status": "succeeded", "amount": intent["amount"],
              "created": intent["created"], "amount_refunded": refunded, "refunded": refunded == intent["amount"],
              "dispute": None}  # fmt: skip
    return {
        "intent": {k: intent[k] for k in ("id", "status", "amount", "amount_received", "currency", "created")},
        "charge": charge,
        "refunds": refunds or [],
        "dispute": None,
    }


def paid_and_refunded(db: Any, broker: Broker, stripe_views: StoredStripe) -> dict[str, Any]:
    """A payment paid by its webhook, activated, emailed, then refunded in full from Stripe's dashboard."""
    ensure_all_indexes(db)
    doc = pending_payment(events.new_id("pi"))
    db.payments.insert_one(doc)
    deps = dataclasses.replace(mongo_deps(db), outbox=MongoOutbox(db, broker))
    intent = events.payment_intent(
        "payment_intent.succeeded", doc["paymentId"], doc["amount"], "INR", events.intent_metadata(doc)
    )
    intent["created"] = int(doc["createdAt"].timestamp())
    assert process_event(events.event("payment_intent.succeeded", intent), deps) == "processed"
    refund = {**events.fixture("refund"), "id": events.new_id("re"), "amount": doc["amount"], "currency": "inr",
              "payment_intent": doc["paymentId"], "charge": intent["latest_charge"], "status": "succeeded"}  # fmt: skip
    charge = {**events.fixture("charge"), "id": intent["latest_charge"], "payment_intent": doc["paymentId"],
              "amount": doc["amount"], "amount_refunded": doc["amount"], "refunded": True}  # fmt: skip
    for event in (events.event("charge.refunded", charge), events.event("refund.created", refund)):
        assert process_event(event, deps) == "processed"
    stripe_views.views[doc["paymentId"]] = view_of(intent, [{k: refund[k] for k in ("id", "amount", "status")}])
    found: dict[str, Any] = db.payments.find_one({"_id": doc["_id"]})
    assert (found["status"], found["activatedAt"] is not None) == ("refunded", True)
    return found


# -- auth and 404 -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ops/api/payments?q=pi_x", "/ops/api/payments/pi_x"])
def test_the_story_routes_need_the_ops_token(client: TestClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        answer = client.get(path, headers=headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("path", ["/ops/api/payments?q=pi_x", "/ops/api/payments/pi_x", "/ops/payments/pi_x"])
def test_without_an_ops_token_the_story_routes_do_not_exist(settings: Settings, db: Any, path: str) -> None:
    for client in serve(settings, db, StoredStripe(), token=None):
        assert client.get(path, headers=AUTH).status_code == 404


@pytest.mark.parametrize("key", ["pi_nothere", str(ObjectId()), "not-a-payment", "<script>"])
def test_an_unknown_payment_is_404_not_found(client: TestClient, key: str) -> None:
    answer = client.get(f"/ops/api/payments/{key}", headers=AUTH)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


# -- search -------------------------------------------------------------------------------------


def test_search_by_each_key(client: TestClient, db: Any) -> None:
    """pi_…, the payment's _id, the customer's id and email (any case) each find it; others do not match."""
    ensure_all_indexes(db)
    mine, other = pending_payment("pi_searched"), pending_payment("pi_other")
    other.update(customerEmail="someone@example.com")
    second = {**pending_payment("pi_second"), "customerId": mine["customerId"]}
    db.payments.insert_many([mine, other, second])

    def found(q: str) -> list[str]:
        answer = client.get("/ops/api/payments", params={"q": q}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert all(set(row) == ROW_KEYS for row in answer.json()["items"])
        return [row["paymentId"] for row in answer.json()["items"]]

    assert found("pi_searched") == ["pi_searched"]
    assert found(f"  {mine['_id']}  ") == ["pi_searched"]
    assert sorted(found(str(mine["customerId"]))) == ["pi_searched", "pi_second"]
    assert sorted(found("SEED-customer@example.com")) == ["pi_searched", "pi_second"]
    assert found("someone@example.com") == ["pi_other"]
    assert found("pi_nobody") == [] and found(str(ObjectId())) == []


@pytest.mark.parametrize("q", ["", "hello", "pi_", "DROP TABLE", "a@b@c"])
def test_a_search_by_nothing_a_payment_is_found_by_is_422_naming_q(client: TestClient, q: str) -> None:
    answer = client.get("/ops/api/payments", params={"q": q}, headers=AUTH)
    assert (answer.status_code, answer.json()["error"]["field"]) == (422, "q")


def test_search_answers_at_most_fifty_newest_first(client: TestClient, db: Any) -> None:
    customer = ObjectId()
    db.payments.insert_many([{**pending_payment(f"pi_many{i:02}"), "customerId": customer} for i in range(55)])
    rows = client.get("/ops/api/payments", params={"q": str(customer)}, headers=AUTH).json()["items"]
    assert len(rows) == 50 and rows[0]["paymentId"] == "pi_many54"


# -- stories ------------------------------------------------------------------------------------


def test_the_full_story_of_a_paid_and_refunded_payment(
    client: TestClient, db: Any, broker: Broker, stripe_views: StoredStripe
) -> None:
    """Ours and Stripe's agree: every part is there, the timeline is oldest first, nothing to diagnose."""
    doc = paid_and_refunded(db, broker, stripe_views)
    selection = {"paymentId": doc["paymentId"]}
    db.ops_audit.insert_one({"who": "Ana", "via": "ops-api", "action": "review_dismiss", "state": "finished",
                             "selection": selection, "count": 1, "at": doc["updatedAt"]})  # fmt: skip
    for key in (doc["paymentId"], str(doc["_id"])):
        answer = client.get(f"/ops/api/payments/{key}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == STORY_KEYS
        assert (body["payment"]["id"], body["payment"]["status"]) == (str(doc["_id"]), "refunded")
        assert [h["status"] for h in body["payment"]["statusHistory"]] == ["pending", "completed", "refunded"]
        assert body["stripe"]["intent"]["status"] == "succeeded" and body["stripeError"] is None
        assert body["stripe"]["charge"]["amount_refunded"] == doc["amount"]
        assert sorted(e["type"] for e in body["events"]) == [
            "charge.refunded", "payment_intent.succeeded", "refund.created"]  # fmt: skip
        assert all(e["status"] == "processed" and e["attempts"] == 1 and "payload" not in e for e in body["events"])
        assert {n["template"] for n in body["emails"]} >= {"enrollment_confirmation", "refund_confirmation"}
        assert body["enrollment"]["status"] == "cancelled" and body["failures"] == []
        assert [a["action"] for a in body["audit"]] == ["review_dismiss"]
        moments = [t["at"] for t in body["timeline"]]
        assert moments == sorted(moments)
        assert {t["source"] for t in body["timeline"]} == {"payment", "stripe", "event", "email", "enrollment", "audit"}
        assert body["diagnosis"] == []
        assert "client_secret" not in answer.text and "secret" not in json.dumps(body["events"])


def test_stripe_unreachable_gives_stripe_null_with_why_and_the_rest_of_the_story(
    client: TestClient, db: Any, broker: Broker, stripe_views: StoredStripe
) -> None:
    doc = paid_and_refunded(db, broker, stripe_views)
    stripe_views.down = True
    body = client.get(f"/ops/api/payments/{doc['paymentId']}", headers=AUTH).json()
    assert body["stripe"] is None and "could not be reached" in body["stripeError"]
    assert len(body["events"]) == 3 and body["enrollment"]["status"] == "cancelled" and body["emails"]
    assert [d["code"] for d in body["diagnosis"]] == ["stripe_unreachable"]
    assert all(t["source"] != "stripe" for t in body["timeline"])


def test_a_failure_record_gives_event_failed_with_the_replay(
    client: TestClient, db: Any, worker: Worker, stripe_views: StoredStripe
) -> None:
    """The real worker dead-letters a succeeded event whose payment it could not find; the story says replay."""
    [doc] = failing_events(worker, 1)
    failure = wait_for(lambda: db.job_failures.find_one({"paymentId": doc["paymentId"]}), 20, "the failure record")
    db.payments.insert_one(doc)
    body = client.get(f"/ops/api/payments/{doc['paymentId']}", headers=AUTH).json()
    assert [f["id"] for f in body["failures"]] == [str(failure["_id"])]
    assert body["events"][0]["status"] == "failed"
    [finding] = [d for d in body["diagnosis"] if d["code"] == "event_failed"]
    assert str(failure["_id"]) in finding["message"]
    assert f"payments-ops failures replay --id {failure['_id']} --yes" in finding["fix"]
    # The page shows the replay button, which leads to the dashboard's confirmation.
    csrf = log_in(client)
    page = client.get(f"/ops/payments/{doc['paymentId']}", headers=HTML)
    assert page.status_code == 200 and 'data-code="event_failed"' in page.text
    assert f'name="ids" value="{failure["_id"]}"' in page.text
    confirm = client.post("/ops/failures/replay", data={"csrf": csrf, "ids": str(failure["_id"])}, headers=HTML)
    assert "Replay 1 failure?" in confirm.text


def test_a_slow_stripe_is_cut_off_by_the_time_box(settings: Settings, db: Any) -> None:
    """A Stripe that takes the connection and never answers: the story comes back without its view."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepting.start()
    client = stripe.StripeClient("sk_test_slow", base_addresses={"api": f"http://127.0.0.1:{port}"},
                                 max_network_retries=0)  # fmt: skip
    gateway = StripeGateway(client)
    gateway.story_timeout = 0.5
    doc = {**pending_payment(events.new_id("pi"))}
    db.payments.insert_one(doc)
    try:
        for app in serve(settings, db, gateway):
            body = app.get(f"/ops/api/payments/{doc['paymentId']}", headers=AUTH).json()
            assert body["stripe"] is None and body["stripeError"] == "Stripe did not answer within 0.5 s"
            assert body["payment"]["paymentId"] == doc["paymentId"]
            assert [d["code"] for d in body["diagnosis"]] == ["stripe_unreachable"]
        assert held, "the request never reached the slow Stripe"
    finally:
        for connection in held:
            connection.close()
        listener.close()


# -- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_searches_and_shows_the_page_escaped(
    client: TestClient, db: Any, broker: Broker, stripe_views: StoredStripe
) -> None:
    doc = paid_and_refunded(db, broker, stripe_views)
    db.payments.update_one({"_id": doc["_id"]}, {"$set": {"serviceName": "<script>alert(1)</script>"}})
    log_in(client)
    assert 'action="/ops/payments"' in client.get("/ops", headers=HTML).text  # the search box on the main page
    results = client.get("/ops/payments", params={"q": doc["customerEmail"]}, headers=HTML)
    assert f'href="/ops/payments/{doc["paymentId"]}"' in results.text
    assert "<script>alert" not in results.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in results.text
    bad = client.get("/ops/payments", params={"q": "nonsense"}, headers=HTML)
    assert bad.status_code == 200 and "search by a pi_" in bad.text
    page = client.get(f"/ops/payments/{doc['paymentId']}", headers=HTML)
    assert page.status_code == 200 and "<script>alert" not in page.text
    assert 'id="healthy"' in page.text and "refund_confirmation" in page.text
    assert client.get("/ops/payments/pi_nothere", headers=HTML).status_code == 404


def test_the_page_offers_reconcile_when_the_webhook_never_came(
    client: TestClient, db: Any, stripe_views: StoredStripe
) -> None:
    doc = pending_payment(events.new_id("pi"))
    db.payments.insert_one(doc)
    intent = events.payment_intent("payment_intent.succeeded", doc["paymentId"], doc["amount"], "INR", {})
    stripe_views.views[doc["paymentId"]] = view_of(intent)
    log_in(client)
    page = client.get(f"/ops/payments/{doc['paymentId']}", headers=HTML).text
    assert 'data-code="webhook_not_received"' in page and 'data-code="stripe_disagrees"' in page
    assert 'action="/ops/reconcile"' in page and "<code>payments-ops reconcile</code>" in page


# -- payments-ops payment -----------------------------------------------------------------------


def test_the_cli_prints_the_story_and_its_json(settings: Settings, db: Any, broker: Broker) -> None:
    """Stripe unreachable (a closed port): the CLI still tells the story; exit 1 for none, 2 for no id at all."""
    views = StoredStripe()
    doc = paid_and_refunded(db, broker, views)
    env = {**cli_env(settings), "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "payments_ops", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    human = cli("payment", doc["paymentId"])
    assert human.returncode == 0, human.stderr
    assert f"payment {doc['paymentId']}" in human.stdout and "status refunded" in human.stdout
    assert "Timeline (UTC)" in human.stdout and "payment_intent.succeeded received" in human.stdout
    assert "stripe_unreachable: Stripe could not be asked" in human.stdout and "fix: " in human.stdout
    as_json = cli("payment", str(doc["_id"]), "--json")
    body = json.loads(as_json.stdout)
    assert set(body) == STORY_KEYS and body["stripe"] is None and body["stripeError"]
    assert cli("payment", "pi_nothere").returncode == 1
    assert cli("payment", "nonsense").returncode == 2


def test_a_refund_job_failure_is_part_of_its_payments_story(client: TestClient, db: Any) -> None:
    """A dead refund job names its intent first: its failure record carries the payment and shows in the story."""
    doc = pending_payment(events.new_id("pi"))
    db.payments.insert_one(doc)
    message = {"message_id": "m-1", "queue_name": "refunds", "actor_name": "process_refund", "options": {},
               "args": [doc["paymentId"], "req-1"]}  # fmt: skip
    MongoFailures(db).record(message, "encoded", RuntimeError("Stripe said no"), "trace")
    assert db.job_failures.find_one()["paymentId"] == doc["paymentId"]
    body = client.get(f"/ops/api/payments/{doc['paymentId']}", headers=AUTH).json()
    assert [(f["actor"], f["state"]) for f in body["failures"]] == [("process_refund", "dead")]
    assert "event_failed" in [d["code"] for d in body["diagnosis"]]
