"""The Stripe API, as the rules need it: plain JSON data in and out, brief faults retried.

tenacity retries one call a few times within one attempt of a job (connection errors, 429,
5xx); longer outages fail the call and the job's own retries take over. A refund is refused
(``ProviderRefused``) only when Stripe says no to it; any other error may hide a refund Stripe
made (a timeout, a 409 for the key still in use), so the job retries and adopts it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stripe
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from adapters.settings import Settings
from domain.errors import ProviderRefused, RetryLater

T = TypeVar("T")


def transient(error: BaseException) -> bool:
    """Stripe errors worth retrying at once: network faults, rate limits and Stripe's own 5xx."""
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    return isinstance(error, stripe.StripeError) and (error.http_status or 0) >= 500


def refused(error: stripe.StripeError) -> bool:
    """Whether Stripe said no to the request itself, for good: a card error (402) or an invalid request
    (400, 404: already refunded, more than is left, disputed, no such intent). A 409 (the
    idempotency key in use after a timeout), an idempotency error, 401/403, 429 and 5xx are not."""
    if isinstance(error, stripe.CardError):
        return True
    return isinstance(error, stripe.InvalidRequestError) and error.http_status in (400, 404)


def with_retries(call: Callable[[], T]) -> T:
    retrying = retry(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    return retrying(call)()


#: Seconds one Stripe request may take (the SDK's default is 80): a slow Stripe fails the call
#: quickly, tenacity tries again, and no request or worker thread is held for minutes.
STRIPE_TIMEOUT = 10


def build_client(settings: Settings) -> stripe.StripeClient:
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_secret_key,
        stripe_version=settings.stripe_api_version,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=0,  # tenacity decides, so retries are not multiplied
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT),
    )


class StripeGateway:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        intent = with_retries(lambda: self.client.v1.payment_intents.retrieve(intent_id))
        return intent.to_dict()

    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        # Only what the flow needs: amount, currency, metadata (card payments via the client secret).
        intent = with_retries(
            lambda: self.client.v1.payment_intents.create(
                params={"amount": amount, "currency": currency.lower(), "metadata": dict(metadata)},
                options={"idempotency_key": idempotency_key},
            )
        )
        return intent.to_dict()

    def list_events(self, event_type: str, since: int) -> list[Mapping[str, Any]]:
        params = {"type": event_type, "created": {"gte": since}, "limit": 100}
        page = with_retries(lambda: self.client.v1.events.list(params=params))  # type: ignore[arg-type]
        return [event.to_dict() for event in page.auto_paging_iter()]

    def list_refunds(self, intent_id: str) -> list[Mapping[str, Any]]:
        page = with_retries(lambda: self.client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100}))
        return [refund.to_dict() for refund in page.auto_paging_iter()]

    def create_refund(
        self, intent_id: str, amount: int | None, reason: str | None, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        params: dict[str, Any] = {"payment_intent": intent_id, "metadata": dict(metadata)}
        if amount is not None:  # without one Stripe refunds what is left of the charge
            params["amount"] = amount
        if reason is not None:
            params["reason"] = reason
        try:
            refund = with_retries(
                lambda: self.client.v1.refunds.create(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                )
            )
        except stripe.StripeError as error:
            if refused(error):
                raise ProviderRefused(error.user_message or str(error)) from error
            raise RetryLater(f"Stripe did not answer the refund: {type(error).__name__} {error.http_status}") from error
        return refund.to_dict()

    def update_payment_intent_amount(self, intent_id: str, amount: int) -> Mapping[str, Any]:
        intent = with_retries(lambda: self.client.v1.payment_intents.update(intent_id, params={"amount": amount}))
        return intent.to_dict()
