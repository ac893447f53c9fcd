"""A small Stripe of one PaymentIntent, for the model-based test: its own rules, and every event it sent.

It is both the gateway the use cases call (create, retrieve, refund, list) and the source of the
webhooks the test delivers. Its rules are Stripe's, as far as this service can see them:

- an intent is paid once; a declined attempt leaves it ``requires_payment_method`` with the error;
- a refund never exceeds what is left of the charge, and a charge under an open or lost dispute
  cannot be refunded (Stripe answers 400, which the gateway turns into ``ProviderRefused``);
- an idempotency key returns the refund it made the first time;
- each event carries its object as it was when the event was made, with a ``created`` in whole
  seconds (so events tie), and lists of events by type are what reconcile reads.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.errors import ProviderRefused
from payments_ops import events

#: Dispute statuses while it is open, and its two endings.
OPEN_DISPUTE = ("warning_needs_response", "needs_response", "under_review")
WON, LOST = "won", "lost"


@dataclass
class StripeModel:
    clock: int = 1_800_000_000
    intent: dict[str, Any] | None = None
    charge_id: str | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)
    dispute: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    #: How the next refund the API creates starts: ``succeeded`` at once, or ``pending``.
    next_refund_status: str = "succeeded"
    #: When set, the next refund is made and then the call fails with this (an answer lost to a timeout).
    fail_after_refund: Exception | None = None
    #: When set, the next refund call fails with this before anything is made (a 5xx).
    fail_before_refund: Exception | None = None
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- time and events ------------------------------------------------------------------------

    def tick(self, seconds: int) -> None:
        self.clock += seconds

    def emit(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self.events.append(events.event(event_type, copy.deepcopy(dict(obj)), created=self.clock))

    # -- what the customer and Stripe's dashboard do -------------------------------------------

    @property
    def paid(self) -> bool:
        return self.intent is not None and self.intent["status"] == "succeeded"

    def pay(self, outcome: str) -> None:
        """The customer pays: ``succeed``, ``decline`` or ``challenge`` (3-D Secure asked for)."""
        assert self.intent is not None and not self.paid
        if outcome == "succeed":
            self.charge_id = self.charge_id or events.new_id("ch")
            self.intent.update(
                status="succeeded", amount_received=self.intent["amount"], latest_charge=self.charge_id,
                last_payment_error=None, next_action=None,
            )  # fmt: skip
            self.emit("payment_intent.succeeded", self.intent)
        elif outcome == "decline":
            self.intent.update(events.INTENT_STATES["payment_intent.payment_failed"])
            self.emit("payment_intent.payment_failed", self.intent)
        else:
            self.intent.update(events.INTENT_STATES["payment_intent.requires_action"])
            self.emit("payment_intent.requires_action", self.intent)

    def change_amount_at_stripe(self, amount: int) -> None:
        """Someone changed the open intent's amount in Stripe's dashboard: what is paid no longer matches."""
        assert self.intent is not None and not self.paid
        self.intent["amount"] = amount

    @property
    def pending_refunds(self) -> bool:
        return any(r["status"] == "pending" for r in self.refunds)

    @property
    def refunded(self) -> int:
        return sum(r["amount"] for r in self.refunds if r["status"] == "succeeded")

    @property
    def held(self) -> int:
        """What refunds not failed take from the charge (Stripe reserves a pending refund's amount)."""
        return sum(r["amount"] for r in self.refunds if r["status"] in ("succeeded", "pending"))

    @property
    def refundable(self) -> int:
        if not self.paid or (self.dispute is not None and self.dispute["status"] != WON):
            return 0
        assert self.intent is not None
        return int(self.intent["amount_received"]) - self.held

    def _refund(self, amount: int, status: str, metadata: Mapping[str, str], reason: str | None) -> dict[str, Any]:
        assert self.intent is not None
        refund = events.fixture("refund")
        refund.update(
            id=events.new_id("re"), amount=amount, status=status, metadata=dict(metadata), reason=reason,
            payment_intent=self.intent["id"], charge=self.charge_id, currency=self.intent["currency"],
            created=self.clock, failure_reason=None,
        )  # fmt: skip
        self.refunds.append(refund)
        self.emit("refund.created", refund)
        if status == "succeeded":
            self._charge_refunded()
        return refund

    def _charge_refunded(self) -> None:
        charge = events.fixture("charge")
        assert self.intent is not None
        charge.update(id=self.charge_id, payment_intent=self.intent["id"], amount_refunded=self.refunded)
        charge.pop("refunds", None)
        self.emit("charge.refunded", charge)

    def dashboard_refund(self, amount: int) -> None:
        """A refund made in Stripe's dashboard: no request of ours, no metadata."""
        assert 0 < amount <= self.refundable
        self._refund(amount, "succeeded", {}, "requested_by_customer")

    def settle_refund(self, index: int, outcome: str) -> None:
        """A pending refund ends ``succeeded`` or ``failed`` (a closed card, say)."""
        refund = self.refunds[index]
        assert refund["status"] == "pending"
        refund["status"] = outcome
        if outcome == "succeeded":
            self.emit("refund.updated", refund)
            self._charge_refunded()
        else:
            refund["failure_reason"] = "expired_or_canceled_card"
            self.emit("refund.failed", refund)

    def open_dispute(self) -> None:
        assert self.paid and self.dispute is None and self.intent is not None
        dispute = events.fixture("dispute")
        dispute.update(
            id=events.new_id("dp"), status="needs_response", amount=int(self.intent["amount_received"]) - self.refunded,
            currency=self.intent["currency"], charge=self.charge_id, payment_intent=self.intent["id"],
            created=self.clock,
        )  # fmt: skip
        self.dispute = dispute
        self.emit("charge.dispute.created", dispute)
        self.emit("charge.dispute.funds_withdrawn", dispute)

    def update_dispute(self) -> None:
        assert self.dispute is not None and self.dispute["status"] in OPEN_DISPUTE
        self.dispute["status"] = "under_review"
        self.emit("charge.dispute.updated", self.dispute)

    def close_dispute(self, outcome: str) -> None:
        assert self.dispute is not None and self.dispute["status"] in OPEN_DISPUTE
        self.dispute["status"] = outcome
        self.emit("charge.dispute.closed", self.dispute)
        if outcome == WON:
            self.emit("charge.dispute.funds_reinstated", self.dispute)

    # -- the gateway the use cases call ------------------------------------------------------------

    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        if idempotency_key in self.keys:
            return copy.deepcopy(self.keys[idempotency_key])
        assert self.intent is None, "one payment's life: one intent"
        intent = events.payment_intent(
            "payment_intent.processing", events.new_id("pi"), amount, currency, dict(metadata)
        )
        intent.update(status="requires_payment_method")
        self.intent = self.keys[idempotency_key] = intent
        return copy.deepcopy(intent)

    def update_payment_intent_amount(self, intent_id: str, amount: int) -> Mapping[str, Any]:
        assert self.intent is not None and self.intent["id"] == intent_id
        self.intent["amount"] = amount
        return copy.deepcopy(self.intent)

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        assert self.intent is not None and self.intent["id"] == intent_id
        return copy.deepcopy(self.intent)

    def list_events(self, event_type: str, since: int) -> list[Mapping[str, Any]]:
        return [copy.deepcopy(e) for e in self.events if e["type"] == event_type and e["created"] >= since]

    def list_refunds(self, intent_id: str) -> list[Mapping[str, Any]]:
        return [copy.deepcopy(r) for r in self.refunds if r["payment_intent"] == intent_id]

    def create_refund(
        self, intent_id: str, amount: int | None, reason: str | None, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        failure, self.fail_before_refund = self.fail_before_refund, None
        if failure is not None:
            raise failure
        if idempotency_key in self.keys:
            return copy.deepcopy(self.keys[idempotency_key])
        left = self.refundable
        if self.dispute is not None and self.dispute["status"] != WON:
            raise ProviderRefused("charge_disputed: this charge has a dispute")
        amount = left if amount is None else amount
        if not 0 < amount <= left:
            raise ProviderRefused(f"amount_too_large: {amount} is more than the {left} left to refund")
        refund = self.keys[idempotency_key] = self._refund(amount, self.next_refund_status, metadata, reason)
        failure, self.fail_after_refund = self.fail_after_refund, None
        if failure is not None:
            raise failure
        return copy.deepcopy(refund)
