"""A run's webhook traffic, as Stripe makes it: at least once, in any order, concurrently, retried after a 503.

The payments are paid at the local Stripe over the stream's first half (localstripe posts one
signed webhook per event to the ingress). Every event is also delivered twice more by this
module: each copy is one *unit* drawn at random from those ready, by ``SENDERS`` threads, paced
over the whole stream. A declined-then-paid payment's unit is its success then its older decline,
back to back (the reverse of their order at Stripe). A delivery answered 503, or that could not
connect, is signed and sent again after a short wait, as Stripe retries; other answers fail the run.

A paid-then-refunded payment's customer asks the API for a full refund once the payment is
activated (again after a 5xx or a lost connection, as a browser would); once the refund is
recorded, Stripe's ``charge.refunded`` for it is delivered twice like every other event
(localstripe sends no refund webhooks itself).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.demo import token
from devstack.stack import Stack
from tests.faults.payments import REFUND, RETRIED, THREE_D_SECURE, LocalStripe, Payment, settle_payment
from tests.support import signed, wait_for

SENDERS = 8
PAYERS = 3
#: Copies of each event this module delivers (localstripe's own webhook comes on top).
COPIES = 2
#: Seconds between two attempts of a refused delivery (Stripe waits longer; the outages here are short).
RESEND_AFTER = 0.25
#: A delivery still refused after this long fails the run; so does a refund not done by then.
GIVE_UP_AFTER = 120.0


@dataclass
class Traffic:
    """What the stream did: deliveries answered 2xx, re-sent ones, and the distinct events delivered."""

    deliveries: int = 0
    resent: int = 0
    event_ids: set[str] = field(default_factory=set)
    #: Events localstripe posted itself (each answered or not, it never retries).
    from_stripe: int = 0


class Stream:
    """Pay ``payments`` and deliver their events over about ``seconds``; faults run meanwhile.

    Parameters:
      stack(Stack): the local stack (ingress URL, webhook and JWT secrets).
      db: the app's database (a refund is asked for once its payment is activated).
      stripe(LocalStripe): the local Stripe (for paying and listing its events).
      payments(list[Payment]): the run's payments, stored already (or some held back on purpose).
      seconds(float): how long paying and delivering are spread over.
    """

    def __init__(
        self, stack: Stack, db: Any, stripe: LocalStripe, payments: list[Payment], seconds: float, rng: random.Random
    ) -> None:
        self.ingress, self.secret = stack.urls["ingress"], stack.webhook_secret
        self.jwt_secret = stack.app_env()["JWT_SECRET"]
        self.db, self.stripe, self.payments = db, stripe, payments
        self.seconds, self.rng = seconds, rng
        self.by_intent = {p.intent_id: p for p in payments}
        self.refunded = [p for p in payments if p.story == REFUND]
        self.traffic = Traffic()
        self.units_total = COPIES * (len(payments) + len(self.refunded))
        self.units_sent = 0
        self._ready: list[list[dict[str, Any]]] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._futures: list[Future[None]] = []
        self._pool = ThreadPoolExecutor(SENDERS + PAYERS + 2, thread_name_prefix="stream")
        self.started = 0.0
        self.since = 0

    # -- running ----------------------------------------------------------------------------

    def start(self) -> Stream:
        self.started = time.monotonic()
        self.since = int(time.time()) - 1
        order = list(self.payments)
        self.rng.shuffle(order)
        three_d_secure = self.stripe.card(THREE_D_SECURE)
        for lane in range(PAYERS):
            self._submit(self._pay, order[lane::PAYERS], three_d_secure)
        self._submit(self._collect)
        self._submit(self._refund, [p for p in order if p.story == REFUND])
        for _ in range(SENDERS):
            self._submit(self._send)
        return self

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._futures.append(self._pool.submit(fn, *args))

    def join(self, timeout: float) -> Traffic:
        """Wait until every unit is delivered; raise what any thread raised."""
        try:
            for future in self._futures:
                future.result(timeout=max(0.0, self.started + timeout - time.monotonic()))
        finally:
            self._done.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
        return self.traffic

    def stop(self) -> None:
        """Stop early (a failing run): threads finish their current delivery and return."""
        self._done.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def delivered_ids(self) -> set[str]:
        """The distinct events delivered so far (a copy)."""
        with self._lock:
            return set(self.traffic.event_ids)

    def resent(self) -> int:
        with self._lock:
            return self.traffic.resent

    def sent_share(self) -> float:
        return self.units_sent / self.units_total if self.units_total else 1.0

    def wait_sent(self, share: float, timeout: float = 120.0) -> None:
        """Block until ``share`` of the units are delivered (faults strike mid-stream)."""
        deadline = time.monotonic() + timeout
        while self.sent_share() < share:
            self._raise_failed()
            if time.monotonic() > deadline:
                raise AssertionError(f"stream stuck at {self.sent_share():.0%} of its deliveries")
            time.sleep(0.05)

    def _raise_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                future.result()

    # -- threads ----------------------------------------------------------------------------

    def _pace(self, index: int, count: int, span: float) -> None:
        """Sleep until the ``index``-th of ``count`` steps is due, spread over ``span`` seconds."""
        due = self.started + span * index / max(1, count)
        while not self._done.is_set() and time.monotonic() < due:
            time.sleep(min(0.05, due - time.monotonic()))

    def _pay(self, lane: list[Payment], three_d_secure: str) -> None:
        stripe = LocalStripe(self.stripe.url)
        try:
            for index, payment in enumerate(lane):
                self._pace(index, len(lane), self.seconds / 2)
                if self._done.is_set():
                    return
                settle_payment(stripe, payment, three_d_secure)
        finally:
            stripe.close()

    def _collect(self) -> None:
        """Turn the local Stripe's events about this run's intents into units as they appear."""
        stripe = LocalStripe(self.stripe.url)
        try:
            self._collect_with(stripe)
        finally:
            stripe.close()

    def _collect_with(self, stripe: LocalStripe) -> None:
        expected = len(self.payments)
        while not self._done.is_set() and len(self._seen) < expected:
            for event in stripe.events_since(self.since):
                payment = self.by_intent.get(str(event["data"]["object"].get("id")))
                if payment is None or event["id"] in self._seen:
                    continue
                self._seen.add(event["id"])
                self.traffic.from_stripe += 1
                if payment.story == RETRIED:
                    assert payment.decline is not None, "a retried payment's success came before its decline"
                    unit = [event, payment.decline]
                else:
                    unit = [event]
                with self._lock:
                    self._ready.extend([unit] * COPIES)
            time.sleep(0.2)

    def _refund(self, payments: list[Payment]) -> None:
        """Ask for each refund once its payment is activated; deliver Stripe's event once it is recorded."""
        stripe = LocalStripe(self.stripe.url)
        try:
            with httpx.Client(base_url=self.ingress, timeout=15) as client:
                for payment in payments:
                    while not payment.paid.wait(0.1):
                        if self._done.is_set():
                            return
                    self._refund_one(client, stripe, payment)
        finally:
            stripe.close()

    def _refund_one(self, client: httpx.Client, stripe: LocalStripe, payment: Payment) -> None:
        activated = {"paymentId": payment.intent_id, "activatedAt": {"$ne": None}}
        wait_for(lambda: self.db.payments.find_one(activated), GIVE_UP_AFTER, "a payment to refund activated")
        self._ask_refund(client, payment)
        made = {"paymentId": payment.intent_id, "refunds": {"$elemMatch": {"id": {"$ne": None}}}}
        wait_for(lambda: self.db.payments.find_one(made), GIVE_UP_AFTER, "the refund made at Stripe")
        event = stripe.charge_refunded(payment.intent_id)
        with self._lock:
            self._ready.extend([[event]] * COPIES)

    def _ask_refund(self, client: httpx.Client, payment: Payment) -> None:
        """POST the refund as the customer until the API answers; a 409 after a lost answer means it was taken."""
        headers = {"Authorization": f"Bearer {token(payment.customer_id, 'customer', self.jwt_secret)}"}
        give_up, tried = time.monotonic() + GIVE_UP_AFTER, False
        while True:
            try:
                answer = client.post(f"/api/payments/{payment.intent_id}/refund", json={}, headers=headers)
                status, text = answer.status_code, answer.text
            except httpx.TransportError as error:
                status, text = 0, repr(error)
            if status == 202 or (status == 409 and tried):
                return
            assert status == 0 or status >= 500, f"refund of {payment.intent_id} answered {status}: {text}"
            assert time.monotonic() < give_up, f"refund of {payment.intent_id} still refused after {GIVE_UP_AFTER}s"
            tried = True
            time.sleep(RESEND_AFTER)

    def _take(self) -> list[dict[str, Any]] | None:
        """A random ready unit once the pace allows; None when all are sent."""
        while not self._done.is_set():
            with self._lock:
                if self.units_sent >= self.units_total:
                    return None
                if self._ready and time.monotonic() >= self._due(self.units_sent):
                    self.units_sent += 1
                    return self._ready.pop(self.rng.randrange(len(self._ready)))
            time.sleep(0.01)
        return None

    def _due(self, index: int) -> float:
        return self.started + self.seconds * index / max(1, self.units_total)

    def _send(self) -> None:
        with httpx.Client(base_url=self.ingress, timeout=15) as client:
            while (unit := self._take()) is not None:
                for event in unit:
                    self._deliver(client, event)

    def _deliver(self, client: httpx.Client, event: dict[str, Any]) -> None:
        give_up = time.monotonic() + GIVE_UP_AFTER
        while True:
            body, headers = signed(event, self.secret)
            try:
                answer = client.post("/api/webhooks/stripe", content=body, headers=headers)
                status, text = answer.status_code, answer.text
            except httpx.TransportError as error:
                status, text = 0, repr(error)
            if 200 <= status < 300:
                with self._lock:
                    self.traffic.deliveries += 1
                    self.traffic.event_ids.add(event["id"])
                return
            assert status in (0, 503), f"delivery of {event['id']} answered {status}: {text}"
            assert time.monotonic() < give_up, f"delivery of {event['id']} still refused after {GIVE_UP_AFTER}s"
            with self._lock:
                self.traffic.resent += 1
            time.sleep(RESEND_AFTER)
