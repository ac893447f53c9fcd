"""Stripe calls are short and retried only for faults worth retrying (issue: a slow Stripe must not hold threads)."""

from __future__ import annotations

import stripe

from adapters.settings import load_settings
from adapters.stripe_gateway import STRIPE_TIMEOUT, build_client, transient


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
