"""``StripeGateway.payment_view`` (a payment story's Stripe side) against the local Stripe."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import stripe

from adapters.stripe_gateway import StripeGateway
from usecases.ports import StripeUnavailable

from .conftest import LocalStripe, stripe_client_for


@pytest.fixture
def gateway(localstripe: LocalStripe) -> Iterator[StripeGateway]:
    client, http_client = stripe_client_for(localstripe.url)
    yield StripeGateway(client)
    http_client.close()


def paid_intent(client: stripe.StripeClient) -> str:
    intent = client.v1.payment_intents.create(
        params={"amount": 4990, "currency": "eur", "payment_method": "pm_card_visa", "metadata": {"order": "story"}}
    )
    client.v1.payment_intents.confirm(intent.id)
    return intent.id


def test_the_intent_its_charge_and_refunds_as_stripe_has_them_without_secrets(gateway: StripeGateway) -> None:
    intent_id = paid_intent(gateway.client)
    gateway.client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 990})
    view = gateway.payment_view(intent_id)
    assert (view["intent"]["id"], view["intent"]["status"], view["intent"]["amount"]) == (intent_id, "succeeded", 4990)
    assert view["charge"]["status"] == "succeeded" and view["charge"]["amount_refunded"] == 990
    assert [(r["amount"], r["status"]) for r in view["refunds"]] == [(990, "succeeded")]
    assert view["dispute"] is None  # the local Stripe has no disputes; its charges name none
    text = json.dumps(view)
    assert "client_secret" not in text and "_secret_" not in text and "payment_method" not in text


def test_an_intent_stripe_does_not_know_is_stripe_unavailable_naming_why(gateway: StripeGateway) -> None:
    with pytest.raises(StripeUnavailable, match="404"):
        gateway.payment_view("pi_unknowntostripe")


def test_a_dispute_the_local_stripe_cannot_show_is_named_not_fatal(gateway: StripeGateway) -> None:
    """localstripe has no /v1/disputes: the dispute is kept as its id, with why it could not be read."""
    assert gateway._dispute("du_lost") == {"id": "du_lost", "unavailable": "APIError 404"}
