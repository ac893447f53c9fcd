"""Stripe calls are short and retried only for faults worth retrying (issue: a slow Stripe must not hold threads)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
import stripe

from adapters.settings import load_settings
from adapters.stripe_gateway import STRIPE_TIMEOUT, StripeGateway, build_client, transient
from domain.errors import ProviderRefused, RetryLater


def test_the_client_gives_up_on_a_slow_stripe_in_seconds() -> None:
    """One request times out after STRIPE_TIMEOUT seconds (not the SDK's 80), with no SDK-level retries."""
    settings = load_settings(
        {"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x", "JWT_SECRET": "j"}, dotenv=None
    )
    client = build_client(settings)
    assert STRIPE_TIMEOUT <= 10
    assert client._requestor._client._timeout == STRIPE_TIMEOUT  # type: ignore[union-attr]


def test_only_network_faults_rate_limits_and_5xx_are_retried() -> None:
    """A card error or a bad request is final at once; a dropped connection, a 429 or a 500 is tried again."""
    assert transient(stripe.APIConnectionError("reset"))
    assert transient(stripe.RateLimitError("slow down", http_status=429))
    assert transient(stripe.APIError("oops", http_status=500))
    assert not transient(stripe.InvalidRequestError("no such intent", param="id", http_status=404))
    assert not transient(stripe.CardError("declined", param="card", code="card_declined", http_status=402))


class _Refunds:
    """A Stripe client whose refund creation raises one given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def create(self, params: Any, options: Any) -> Any:
        raise self.error


def _creating(error: Exception, monkeypatch: pytest.MonkeyPatch) -> StripeGateway:
    monkeypatch.setattr("adapters.stripe_gateway.with_retries", lambda call: call())  # no waiting in a unit test
    return StripeGateway(cast(stripe.StripeClient, SimpleNamespace(v1=SimpleNamespace(refunds=_Refunds(error)))))


REFUSALS = [
    stripe.InvalidRequestError(
        "Charge ch_1 has already been refunded.", param=None, code="charge_already_refunded", http_status=400
    ),
    stripe.InvalidRequestError(
        "Refund amount is greater than unrefunded amount on charge", param="amount", code="amount_too_large",
        http_status=400,
    ),
    stripe.InvalidRequestError(
        "Charge ch_1 has been charged back.", param=None, code="charge_disputed", http_status=400
    ),
    stripe.CardError("Your card was declined.", param=None, code="card_declined", http_status=402),
]  # fmt: skip

NOT_REFUSALS = [
    stripe.APIError(
        "There is currently another in-progress request using this Stripe-Idempotency-Key", http_status=409
    ),
    stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters", http_status=400),
    stripe.RateLimitError("Too many requests", http_status=429),
    stripe.APIError("An unknown error occurred", http_status=500),
    stripe.APIError("Bad gateway", http_status=502),
    stripe.APIConnectionError("Request timed out", should_retry=True),
    stripe.AuthenticationError("Invalid API key", http_status=401),
    stripe.PermissionError("The key may not refund", http_status=403),
]


@pytest.mark.parametrize("error", REFUSALS, ids=lambda e: f"{type(e).__name__}-{e.http_status}")
def test_a_refund_stripe_refuses_is_provider_refused(
    error: stripe.StripeError, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid request or a card error: Stripe made no refund and never will, for this request."""
    with pytest.raises(ProviderRefused):
        _creating(error, monkeypatch).create_refund("pi_1", 100, None, {}, "refund:r1")


@pytest.mark.parametrize("error", NOT_REFUSALS, ids=lambda e: f"{type(e).__name__}-{e.http_status}")
def test_an_error_that_is_no_refusal_is_retried_later(
    error: stripe.StripeError, monkeypatch: pytest.MonkeyPatch
) -> None:
    """409 (key in use after a timeout), 429, 5xx, a timeout, a bad key: the refund may exist; retry, never refuse."""
    with pytest.raises(RetryLater):
        _creating(error, monkeypatch).create_refund("pi_1", 100, None, {}, "refund:r1")
