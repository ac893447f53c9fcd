"""devstack.localstripe_server: localstripe on 127.0.0.1 with its own state file, driven by the stripe SDK."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from .conftest import LocalStripe, WebhookReceiver, start_localstripe, stripe_client_for

SHARED_PICKLE = Path("/tmp/localstripe.pickle")


def _pickle_snapshot() -> tuple[int, int] | None:
    try:
        st = SHARED_PICKLE.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def _new_intent(client: stripe.StripeClient, order: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": 1250, "currency": "eur", "metadata": {"order_id": order}})


def test_payment_intent_succeeds_with_visa(stripe_client: stripe.StripeClient) -> None:
    """An intent created bare, given pm_card_visa by an update and confirmed, is retrieved as succeeded."""
    intents = stripe_client.v1.payment_intents
    intent = _new_intent(stripe_client, "ord-visa")
    assert intent.status == "requires_payment_method"
    assert intent.metadata["order_id"] == "ord-visa"

    intent = intents.update(intent.id, params={"payment_method": "pm_card_visa"})
    assert intent.status == "requires_confirmation"
    intents.confirm(intent.id)

    fetched = intents.retrieve(intent.id)
    assert fetched.status == "succeeded"
    assert fetched.amount == 1250
    assert fetched.metadata["order_id"] == "ord-visa"
    # localstripe always returns latest_charge expanded (real Stripe: an id unless expanded).
    charge = fetched.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.status == "succeeded" and charge.paid and charge.payment_intent == intent.id


def test_succeeded_webhook_is_signed(stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver) -> None:
    """Confirming an intent sends a payment_intent.succeeded webhook whose Stripe-Signature verifies."""
    intents = stripe_client.v1.payment_intents
    intent = _new_intent(stripe_client, "ord-webhook")
    intents.update(intent.id, params={"payment_method": "pm_card_visa"})
    intents.confirm(intent.id)

    delivery = webhook_receiver.wait_for(
        lambda e: e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == intent.id
    )
    header = delivery.headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(delivery.body, header, webhook_receiver.secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(delivery.body, header, "whsec_wrong", tolerance=300)

    event = delivery.event
    assert event["object"] == "event" and event["id"].startswith("evt_")
    assert event["api_version"] == "2017-08-15"  # fixed by localstripe, whatever Stripe-Version says
    assert isinstance(event["created"], int)
    obj = event["data"]["object"]
    assert obj["status"] == "succeeded"
    assert obj["metadata"] == {"order_id": "ord-webhook"}
    assert obj["latest_charge"]["status"] == "succeeded"


def test_declined_card_sends_payment_failed(
    stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    """pm_card_chargeCustomerFail makes confirm raise CardError and sends payment_intent.payment_failed."""
    intents = stripe_client.v1.payment_intents
    intent = _new_intent(stripe_client, "ord-declined")
    intents.update(intent.id, params={"payment_method": "pm_card_chargeCustomerFail"})

    with pytest.raises(stripe.CardError) as declined:
        intents.confirm(intent.id)
    assert declined.value.http_status == 402
    assert declined.value.code == "card_declined"

    fetched = intents.retrieve(intent.id)
    assert fetched.status == "requires_payment_method"
    assert fetched.last_payment_error is not None
    assert fetched.last_payment_error.code == "card_declined"

    delivery = webhook_receiver.wait_for(
        lambda e: e["type"] == "payment_intent.payment_failed" and e["data"]["object"]["id"] == intent.id
    )
    assert stripe.WebhookSignature.verify_header(
        delivery.body, delivery.headers["Stripe-Signature"], webhook_receiver.secret, tolerance=300
    )
    obj = delivery.event["data"]["object"]
    assert obj["status"] == "requires_payment_method"
    assert obj["last_payment_error"]["code"] == "card_declined"


def test_localstripe_quirks(stripe_client: stripe.StripeClient) -> None:
    """Pins localstripe behaviour the app must live with (rejected params, no idempotency), and the
    one the stand-in mends: an updated amount is stored as the integer Stripe keeps."""
    intents = stripe_client.v1.payment_intents
    for extra in ("description", "receipt_email", "automatic_payment_methods"):
        params: Any = {"amount": 100, "currency": "eur"}
        params[extra] = {"enabled": True} if extra == "automatic_payment_methods" else "x@example.com"
        with pytest.raises(stripe.InvalidRequestError, match=f"Unexpected {extra}"):
            intents.create(params=params)

    first = intents.create(params={"amount": 100, "currency": "eur"}, options={"idempotency_key": "same"})
    second = intents.create(params={"amount": 100, "currency": "eur"}, options={"idempotency_key": "same"})
    assert first.id != second.id  # Idempotency-Key is ignored

    updated = intents.update(first.id, params={"amount": 300})
    assert updated["amount"] == 300  # localstripe alone stores the form string "300"

    # pm_card_visa_chargeDeclined (4000 0000 0000 0002) is declined when charged, as on Stripe (localstripe
    # alone declines it only when attached to a customer, and charges it).
    declined_alias = intents.create(
        params={"amount": 100, "currency": "eur", "payment_method": "pm_card_visa_chargeDeclined"}
    )
    with pytest.raises(stripe.CardError) as generic:
        intents.confirm(declined_alias.id)
    assert generic.value.error is not None
    assert (generic.value.code, generic.value.error.decline_code) == ("card_declined", "generic_decline")
    unknown = intents.create(params={"amount": 100, "currency": "eur"})
    intents.update(unknown.id, params={"payment_method": "pm_card_chargeDeclined"})
    with pytest.raises(stripe.InvalidRequestError) as not_found:
        intents.confirm(unknown.id)
    assert not_found.value.http_status == 404


def test_state_files_are_separate_and_survive_restart(tmp_path: Path) -> None:
    """Two instances with different state files share nothing, a restart keeps data, /tmp is untouched."""
    before = _pickle_snapshot()
    a = start_localstripe("ls-a", tmp_path, tmp_path / "a" / "state.pickle")
    b = start_localstripe("ls-b", tmp_path, tmp_path / "b" / "state.pickle")
    servers: list[LocalStripe] = [a, b]
    client_a, http_a = stripe_client_for(a.url)
    client_b, http_b = stripe_client_for(b.url)
    try:
        intent = _new_intent(client_a, "ord-state")
        other = _new_intent(client_b, "ord-other")
        for client, foreign in ((client_b, intent.id), (client_a, other.id)):
            with pytest.raises(stripe.InvalidRequestError) as unknown:
                client.v1.payment_intents.retrieve(foreign)
            assert unknown.value.http_status == 404
        assert a.state.exists() and b.state.exists()
        assert not list(a.state.parent.glob("*.tmp"))  # atomic writes leave no temp files behind

        assert a.child.stop() == 0  # SIGTERM is a clean exit
        a = start_localstripe("ls-a2", tmp_path, a.state, port=a.port)
        servers.append(a)
        kept = client_a.v1.payment_intents.retrieve(intent.id)
        assert kept.metadata["order_id"] == "ord-state"
        assert kept.status == "requires_payment_method"
    finally:
        http_a.close()
        http_b.close()
        for server in servers:
            server.child.stop()
    assert _pickle_snapshot() == before


def test_exits_cleanly_on_sigint(tmp_path: Path) -> None:
    """SIGINT stops the server with exit code 0."""
    server = start_localstripe("ls-int", tmp_path, tmp_path / "state.pickle")
    assert server.child.proc is not None
    os.kill(server.child.pid, signal.SIGINT)
    assert server.child.proc.wait(10) == 0
    server.child.stop()


def _browser_confirm(server: LocalStripe, intent: Any, number: str, secret: str | None = None) -> httpx.Response:
    """POST /v1/payment_intents/{id}/confirm as the page's Stripe.js sends it: publishable key, client
    secret, the card element's card; a JSON body with no Content-Type, as fetch sends a string."""
    card = {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    body = {
        "key": "pk_test_localstripe",
        "client_secret": secret or intent.client_secret,
        "payment_method_data": {"type": "card", "card": card, "billing_details": {"address": {"postal_code": None}}},
    }
    return httpx.post(f"{server.url}/v1/payment_intents/{intent.id}/confirm", content=json.dumps(body), timeout=5)


def test_a_browser_pays_with_the_card_of_its_card_element(
    localstripe: LocalStripe, stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    """Stripe.js's confirm (publishable key, client secret, card data) charges the card and sends the webhook."""
    intent = _new_intent(stripe_client, "ord-browser")
    wrong = _browser_confirm(localstripe, intent, "4242424242424242", secret=intent.id + "_secret_wrong")
    assert wrong.status_code == 401
    paid = _browser_confirm(localstripe, intent, "4242424242424242")
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded"
    assert stripe_client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    webhook_receiver.wait_for(
        lambda e: e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == intent.id
    )
    again = _browser_confirm(localstripe, intent, "4242424242424242")
    assert again.status_code == 400 and again.json()["error"]["code"] == "payment_intent_unexpected_state"


def test_a_declined_card_is_answered_as_stripe_does_and_another_card_may_follow(
    localstripe: LocalStripe, stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    """4000 0000 0000 9995: 402 card_error insufficient_funds with Stripe's message and the intent, the
    payment_failed webhook; the same intent then pays with a good card."""
    intent = _new_intent(stripe_client, "ord-insufficient")
    declined = _browser_confirm(localstripe, intent, "4000000000009995")
    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert error["message"] == "Your card has insufficient funds."
    assert error["payment_intent"]["status"] == "requires_payment_method"
    failed = webhook_receiver.wait_for(
        lambda e: e["type"] == "payment_intent.payment_failed" and e["data"]["object"]["id"] == intent.id
    )
    assert failed.event["data"]["object"]["last_payment_error"]["message"] == "Your card has insufficient funds."

    assert _browser_confirm(localstripe, intent, "4242424242424242").json()["status"] == "succeeded"


def test_a_3d_secure_card_waits_for_its_authentication(
    localstripe: LocalStripe, stripe_client: stripe.StripeClient
) -> None:
    """4000 0025 0000 3155 leaves the intent requires_action until localstripe's _authenticate succeeds."""
    intent = _new_intent(stripe_client, "ord-3ds")
    assert _browser_confirm(localstripe, intent, "4000002500003155").json()["status"] == "requires_action"
    answer = httpx.post(
        f"{localstripe.url}/v1/payment_intents/{intent.id}/_authenticate?success=true",
        content=json.dumps({"key": "pk_test_localstripe", "client_secret": intent.client_secret}),
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["status"] == "succeeded"


def test_its_stripe_js_pays_with_the_card_element(localstripe: LocalStripe) -> None:
    """/js.stripe.com/v3/ is localstripe's Stripe.js with the card-paying confirmCardPayment after it."""
    script = httpx.get(f"{localstripe.url}/js.stripe.com/v3/", timeout=5)
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    assert script.text.index("class Element") < script.text.index("stripe.confirmCardPayment = async function")
