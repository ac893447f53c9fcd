"""The Stripe API, as the rules need it: plain JSON data in and out, brief faults retried.

tenacity retries one call a few times within one attempt of a job (connection errors, 429,
5xx); longer outages fail the call and the job's own retries take over. A refund is refused
(``ProviderRefused``) only when Stripe says no to it; any other error may hide a refund Stripe
made (a timeout, a 409 for the key still in use), so the job retries and adopts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as TimedOut
from typing import Any, TypeVar

import stripe
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from adapters.settings import Settings
from domain.errors import ProviderRefused, RetryLater
from usecases.ports import StripeUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)


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


#: Seconds a payment's story waits for Stripe's view before it is shown without it.
STORY_TIMEOUT = 5.0
#: The story's Stripe reads run here, so the wait is bounded whatever the HTTP client does; a slow
#: Stripe holds at most these threads, each for at most STRIPE_TIMEOUT a request.
_STORY_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stripe-story")

#: What the story shows of each Stripe object: an allow-list, so no client secret or card data.
INTENT_FIELDS = ("id", "status", "amount", "amount_received", "currency", "created", "canceled_at",
                 "cancellation_reason", "metadata", "livemode")  # fmt: skip
CHARGE_FIELDS = ("id", "status", "amount", "amount_captured", "amount_refunded", "refunded", "paid", "captured",
                 "currency", "created", "failure_code", "failure_message", "dispute", "disputed")  # fmt: skip
OUTCOME_FIELDS = ("type", "network_status", "reason", "risk_level", "seller_message")
ERROR_FIELDS = ("type", "code", "decline_code", "message")
REFUND_FIELDS = ("id", "amount", "currency", "status", "reason", "created", "failure_reason")
DISPUTE_FIELDS = ("id", "status", "reason", "amount", "currency", "created", "is_charge_refundable")


def _pick(obj: Mapping[str, Any] | None, fields: Sequence[str]) -> dict[str, Any] | None:
    return {k: obj.get(k) for k in fields if k in obj} if isinstance(obj, Mapping) else None


class StripeGateway:
    story_timeout = STORY_TIMEOUT

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def payment_view(self, intent_id: str) -> Mapping[str, Any]:
        """The intent, its latest charge, the refunds and the dispute, within ``story_timeout`` seconds."""
        future = _STORY_POOL.submit(self._payment_view, intent_id)
        try:
            return future.result(timeout=self.story_timeout)
        except TimedOut:
            raise StripeUnavailable(f"Stripe did not answer within {self.story_timeout:g} s") from None
        except stripe.StripeError as error:
            status = f" {error.http_status}" if error.http_status else ""
            raise StripeUnavailable(f"{type(error).__name__}{status}: {error.user_message or error}") from None
        except Exception as error:  # a read for people: whatever broke, the rest of the page is still shown
            log.warning("stripe view failed", extra={"payment_id": intent_id, "error": repr(error)})
            raise StripeUnavailable(f"the Stripe read failed: {type(error).__name__}") from None

    def _payment_view(self, intent_id: str) -> dict[str, Any]:
        # One attempt each, no tenacity: the time box is the page's, and people can reload.
        intent = self.client.v1.payment_intents.retrieve(intent_id, params={"expand": ["latest_charge"]}).to_dict()
        charge = intent.get("latest_charge")
        if isinstance(charge, str):
            charge = self.client.v1.charges.retrieve(charge).to_dict()
        refunds = self.client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100})
        view: dict[str, Any] = {
            "intent": {
                **(_pick(intent, INTENT_FIELDS) or {}),
                "last_payment_error": _pick(intent.get("last_payment_error"), ERROR_FIELDS),
                "next_action": _pick(intent.get("next_action"), ("type",)),
            },
            "charge": None,
            "refunds": [_pick(r.to_dict(), REFUND_FIELDS) for r in refunds.data],
            "dispute": None,
        }
        if isinstance(charge, Mapping):
            outcome = _pick(charge.get("outcome"), OUTCOME_FIELDS)
            view["charge"] = {**(_pick(charge, CHARGE_FIELDS) or {}), "outcome": outcome}
            dispute = charge.get("dispute")
            if isinstance(dispute, Mapping):
                dispute = dispute.get("id")
            if isinstance(dispute, str):
                view["charge"]["dispute"] = dispute
                view["dispute"] = self._dispute(dispute)
        return view

    def _dispute(self, dispute_id: str) -> dict[str, Any]:
        """The dispute, or its id with why it could not be read (the local Stripe has no disputes API)."""
        try:
            dispute = self.client.v1.disputes.retrieve(dispute_id).to_dict()
        except stripe.StripeError as error:
            return {"id": dispute_id, "unavailable": f"{type(error).__name__} {error.http_status or ''}".strip()}
        due = (dispute.get("evidence_details") or {}).get("due_by")
        return {**(_pick(dispute, DISPUTE_FIELDS) or {}), "evidence_details": {"due_by": due}}

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
