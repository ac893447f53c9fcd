"""What the use cases need from the outside world. Adapters implement these; tests may hand in others."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain.activation import Claim
from domain.alerts import EmailDue, RuleState
from domain.checkout import Service
from domain.doctor import Endpoint, IndexSpec
from domain.events import StripeEvent
from domain.payments import Party, Payment, Refund
from domain.success_metrics import WEBHOOK, EventFacts, PaymentFacts

#: What ``Enrollments.activate`` found.
ACTIVATED = "activated"  # this call made the enrollment active for this payment
ALREADY = "already"  # this same payment activated it before (whatever its status now): nothing changed
DUPLICATE = "duplicate"  # active already, paid by another payment: never activated twice


class Payments(Protocol):
    def by_intent(self, intent_id: str) -> Payment | None:
        """The payment whose ``paymentId`` is this PaymentIntent id, read from the primary."""

    def move(
        self,
        payment: Payment,
        target: str,
        event_id: str | None,
        event_at: datetime | None,
        charge_id: str | None = None,
    ) -> Payment | None:
        """Set ``target`` only if the document still has ``payment``'s status and lastEventAt.

        Returns the payment after the move, or None when another writer got there first; the
        caller then reloads and decides again. A move that no event caused (confirm-payment)
        passes ``event_id=None`` and keeps lastEventAt. A target that does not hold the open slot
        (``domain.payments.holds_slot``) gives it up. ``charge_id`` is remembered with the move.
        """

    def move_by_intent(
        self,
        intent_id: str,
        target: str,
        sources: Collection[str],
        event_id: str,
        event_at: datetime,
        claim: Claim | None = None,
        charge_id: str | None = None,
    ) -> Payment | None:
        """Find the intent's payment and move it to ``target`` in one conditional write, or do nothing.

        Only a payment in one of ``sources``, whose lastEventAt is unset or older than
        ``event_at`` and, with a ``claim``, holding exactly the amount, currency and ids the
        intent claims (``domain.activation.claim_of``) moves. Returns the payment after the
        move, or None when none matched: the caller reads it and decides step by step.
        """

    def flag_review(self, payment: Payment, reason: str, event_id: str | None) -> None:
        """Set ``reviewRequired`` (once; the first reason stays) and give up the open slot."""

    def awaiting_activation(self, older_than: timedelta) -> list[Payment]:
        """Completed payments not yet activated, held for review, nor whose review was dismissed or
        refunded, untouched for ``older_than``."""

    def stuck(self, older_than: timedelta) -> list[Payment]:
        """Payments with an intent left ``pending``, ``requires_action`` or ``processing`` for ``older_than``."""

    def by_charge(self, charge_id: str) -> Payment | None:
        """The payment whose succeeded intent made this charge (``chargeId``)."""

    def note_event(self, payment: Payment, event_id: str, event_at: datetime) -> None:
        """Record a newer event that left the status as it is (``lastEventAt``), if the status is still the same."""

    def note_received(self, payment: Payment, amount: int) -> None:
        """Remember what Stripe took when it is not the price (``amountReceived``): refunds count from it."""

    def note_charge(self, payment: Payment, charge_id: str) -> None:
        """Remember the charge of the succeeded intent (disputes and refunds may name only it)."""

    def resolve_review(self, payment: Payment, action: str, by: str) -> bool:
        """Clear ``reviewRequired`` (kept in ``reviewResolved`` with the action), if still set; True if now."""

    def record_activation(self, payment: Payment, enrollment_id: Any) -> None:
        """Set ``activatedAt`` and ``enrollmentId`` the first time only, and give up the open slot."""


class Enrollments(Protocol):
    def activate(self, payment: Payment, verified: bool) -> tuple[str, Any]:
        """Make the customer's enrollment in the service active for ``payment``, at most once.

        Returns ``(ACTIVATED | ALREADY | DUPLICATE, enrollment id)``. An enrollment this payment
        activated before is never activated again (a ``cancelled`` one stays cancelled): that is
        ``ALREADY``. ``verified`` marks the activation as confirmed by a signed webhook
        (``webhookVerified``).
        """

    def mark_verified(self, payment: Payment) -> None:
        """Set ``webhookVerified`` on the enrollment this payment activated; nothing else changes."""

    def cancel(self, payment: Payment, payment_status: str) -> None:
        """Cancel the enrollment this payment activated (never one another payment paid for)."""

    def suspend(self, payment: Payment, dispute_id: str) -> None:
        """Suspend the enrollment this payment activated, if it is active, naming the dispute."""

    def reinstate(self, payment: Payment, dispute_id: str, payment_status: str) -> None:
        """Make active again the enrollment this dispute suspended (and no other)."""


class Disputes(Protocol):
    def record(
        self, payment: Payment, dispute: Mapping[str, Any], event_at: datetime, before: str, flags: Mapping[str, bool]
    ) -> bool:
        """Store Stripe's dispute over the one ``payment`` holds, if it is still that one."""


@dataclass(frozen=True)
class Notice:
    """One email to make sure of: its dedupe key, template, recipient and the template's values."""

    key: str
    template: str
    to: str
    context: Mapping[str, str]


class Outbox(Protocol):
    def notify_all(self, notices: Sequence[Notice]) -> None:
        """Ensure one email exists under each notice's key and is on its way unless already sent."""


class BadTemplate(Exception):
    """The email cannot be written (unknown template, a value it needs missing): retrying cannot help."""


class Undeliverable(Exception):
    """The server refused this recipient or this message for good (5xx): resending cannot help."""


class Withdrawn(Exception):
    """The caller's check said the email stopped being true before the server took it: not sent."""


class NotSent(Exception):
    """A send fault that may pass (server down, 4xx, timeout, refused login); its text names no address."""


class Notifications(Protocol):
    """The outbox as email delivery sees it. Every write after ``claim`` is fenced by the claim's
    token: an attempt whose claim was taken over since changes nothing."""

    def claim(self, key: str, holder: str | None = None) -> Mapping[str, Any] | None:
        """Take the notification for this attempt (``holder``), counted in ``attempts``: the stored
        document with its ``claimToken``, or None when it is sent, failed or held by a live attempt."""

    def mark_sent(self, key: str, token: str) -> None: ...

    def release(self, key: str, token: str, error: str) -> None:
        """Back to ``pending`` after a fault, for the next attempt."""

    def mark_failed(self, key: str, token: str, error: str) -> None: ...

    def cancel(self, key: str, token: str, reason: str) -> None:
        """``cancelled``: what the email says stopped being true, so it is never sent."""


class EmailSender(Protocol):
    def render(self, template: str, context: Mapping[str, str]) -> tuple[str, str, str]:
        """``(subject, text, html)`` of the template; raises ``BadTemplate``."""

    def send(
        self, to: str, subject: str, text: str, html: str, message_id: str, withdrawn: Callable[[], str | None]
    ) -> None:
        """Send one email under its stable ``message_id``; brief faults are retried within the call.

        ``withdrawn`` runs before each try and once connected: a reason it gives raises ``Withdrawn``
        and nothing is sent. Raises ``Undeliverable`` for a refusal for good, ``NotSent`` for a fault
        that may pass.
        """


class EmailOutcomes(Protocol):
    def count(self, outcome: str) -> None:
        """One email ``sent``, ``failed`` for good, or ``cancelled``."""


@dataclass(frozen=True)
class EmailDeps:
    """What email delivery touches, built once per worker process."""

    notifications: Notifications
    sender: EmailSender
    payments: Payments
    outcomes: EmailOutcomes
    max_attempts: int  # the email actor's budget: the first try and its retries


class Inbox(Protocol):
    def receive(self, event: StripeEvent, source: str = WEBHOOK) -> str:
        """Record a delivery (first one stores the event and how it arrived); return the event's status after it."""

    def finish(self, event_id: str, status: str) -> None:
        """Mark the event ``processed`` or ``ignored``."""

    def fail(self, event_id: str, error: str) -> None:
        """Mark the event ``failed`` with the reason (it will not be retried by the worker)."""

    def reject(self, event_id: str, payload: Mapping[str, Any], error: str, source: str = WEBHOOK) -> None:
        """Record a delivery that does not parse as ``failed`` with the reason; an event already done stays so."""

    def stale(self, older_than: timedelta) -> list[dict[str, Any]]:
        """Stored payloads of events still ``received`` whose last attempt is older than ``older_than``."""

    def status_of(self, event_id: str) -> str | None:
        """The inbox status of an event, None if it never arrived."""

    def oldest_unfinished(self) -> datetime | None:
        """When the oldest event not yet processed (``received`` or ``failed``) arrived."""


class Jobs(Protocol):
    """Work handed to the workers (every message signed)."""

    def enqueue_event(self, payload: Mapping[str, Any], source: str | None = None) -> None:
        """Queue a Stripe event for the events actor; ``source`` (``reconcile``) when it was not pushed by Stripe."""

    def enqueue_refund(self, intent_id: str, request_id: str) -> None:
        """Ask the refunds actor to carry out a recorded refund request."""


class StripeGateway(Protocol):
    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]:
        """The intent as Stripe has it now, as plain JSON data."""

    def list_events(self, event_type: str, since: int) -> list[Mapping[str, Any]]:
        """Stripe's events of one type created at or after ``since`` (Unix seconds), as plain JSON data."""

    def list_refunds(self, intent_id: str) -> list[Mapping[str, Any]]:
        """Every refund Stripe has for the intent's charge."""

    def create_refund(
        self, intent_id: str, amount: int | None, reason: str | None, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]:
        """Refund ``amount`` (None: the rest of the charge).

        Raises ``domain.errors.ProviderRefused`` when Stripe says no for good.
        """


class Refunds(Protocol):
    """The refunds of a payment (``adapters.refunds``): each write conditional, each refund counted once."""

    def reserve(
        self,
        payment: Payment,
        request_id: str,
        amount: int,
        reason: str | None,
        note: str | None,
        requested_by: dict[str, Any],
        *,
        whole_charge: bool = False,
        resolving: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a request and hold ``amount``; ``whole_charge`` asks Stripe for the rest of the charge,
        ``resolving`` resolves the payment's review in the same conditional write."""

    def claim(self, payment: Payment, request_id: str, holder: str | None) -> bool: ...

    def link(self, payment: Payment, request_id: str, stripe_id: str, status: str) -> None: ...

    def add(self, payment: Payment, stripe_id: str, amount: int, status: str, reason: str | None) -> None: ...

    def count(self, payment: Payment, stripe_id: str, amount: int, reserved: int) -> bool: ...

    def set_status(self, payment: Payment, stripe_id: str, status: str) -> None: ...

    def fail(self, payment: Payment, entry: Refund, reason: str) -> bool: ...

    def finished(self, payment: Payment, entry: Refund) -> None: ...

    def unfinished(self, older_than: timedelta) -> list[tuple[str, str | None, str | None]]: ...

    def stale_requests(self, older_than: timedelta) -> list[tuple[str, str]]: ...

    def note_requeue(self, intent_id: str, request_id: str, older_than: timedelta) -> int | None: ...

    def abandon(self, payment: Payment, entry: Refund, reason: str) -> bool: ...


@dataclass(frozen=True)
class Links:
    """Where emails point, and where alerts for people go."""

    app_base_url: str
    ops_email: str | None = None


@dataclass(frozen=True)
class Deps:
    """Everything a handler may touch, built once per process by its composition root."""

    payments: Payments
    inbox: Inbox
    stripe: StripeGateway
    enrollments: Enrollments
    outbox: Outbox
    links: Links
    refunds: Refunds
    jobs: Jobs
    disputes: Disputes


@dataclass(frozen=True)
class Draft:
    """A payment about to get its PaymentIntent."""

    record_id: Any
    amount: int
    currency: str
    status: str
    intent_id: str | None
    creating: bool  # another request holds the lease to create its intent


class Catalog(Protocol):
    def service(self, service_id: Any) -> Service | None: ...

    def user(self, user_id: Any) -> Party | None: ...


class Checkout(Protocol):
    """The create-intent side of ``payments``: one open payment per customer and service."""

    def is_enrolled(self, customer_id: Any, service_id: Any) -> bool: ...

    def open_payment(self, customer_id: Any, service_id: Any) -> Draft | None:
        """The payment holding the customer's open slot for the service, if one does."""

    def insert_pending(self, customer: Party, specialist: Party, service: Service, amount: int) -> Draft | None:
        """Store a pending payment holding the open slot and the creation lease; None if the slot is taken."""

    def claim_creation(self, record_id: Any) -> bool:
        """Take over creating the intent of a draft whose previous creator's lease expired."""

    def attach_intent(self, record_id: Any, intent_id: str) -> None: ...

    def release_creation(self, record_id: Any) -> None:
        """Give the lease back after a failed Stripe call, so the next request can try at once."""

    def set_amount(self, record_id: Any, amount: int) -> None: ...


class Intents(Protocol):
    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Mapping[str, Any]: ...

    def update_payment_intent_amount(self, intent_id: str, amount: int) -> Mapping[str, Any]: ...

    def retrieve_payment_intent(self, intent_id: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class CheckoutDeps:
    catalog: Catalog
    checkout: Checkout
    intents: Intents
    core: Deps


# The ops service's ports (usecases/ops.py, usecases/reviews.py): the adapters behind the
# ``payments-ops`` command, the ``/ops`` API and the dashboard implement these.

#: A failure record's states while a run holds it (it was ``dead``; it ends ``replayed`` or ``purged``).
REPLAYING = "replaying"
PURGING = "purging"
CLAIMED = (REPLAYING, PURGING)
#: Every state a failure record may be in.
FAILURE_STATES = ("dead", REPLAYING, PURGING, "replayed", "purged")


@dataclass(frozen=True)
class Operator:
    """Who acts: the person's name, and the door (``payments-ops``, ``ops-api``, ``ops-dashboard``)."""

    name: str
    via: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class FailureSelection:
    """Which failures: by ids, or by queue, actor, error text, last-failure time range and state."""

    ids: tuple[str, ...] = ()
    queue: str | None = None
    actor: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = None


@dataclass(frozen=True)
class StoredFailure:
    id: str
    queue: str
    redis_message_id: str | None
    message: str  # Dramatiq's encoded message
    event_id: str | None = None  # the Stripe event the job was processing, if any


class FailureStore(Protocol):
    def page(
        self, selection: FailureSelection, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def get(self, failure_id: str) -> dict[str, Any] | None: ...

    def select(self, selection: FailureSelection) -> list[StoredFailure]: ...

    def claim(self, failure_id: str, state: str, by: str) -> str | None:
        """Take a dead record (``state``: replaying or purging) in one conditional write; its token, or None."""

    def mark(self, failure_id: str, state: str, by: str, token: str) -> bool:
        """The claimed record's end state, while ``token`` still holds it."""

    def release(self, failure_id: str, token: str) -> None:
        """Give a claimed record back (``dead``) after its action failed."""


class QueueAdmin(Protocol):
    def depths(self) -> dict[str, dict[str, int]]: ...

    def authentic(self, encoded: str) -> bool:
        """Whether a stored message carries the project's valid signature."""

    def enqueue_copy(self, encoded: str) -> None:
        """Enqueue a fresh copy of a stored message: retries and age reset, signed again."""

    def drop_dead_letter(self, queue: str, redis_message_id: str) -> None: ...

    def dead_workers(self) -> dict[str, int]:
        """Worker (broker) ids whose heartbeat stopped, with how many messages each still holds."""

    def requeue_dead_workers(self) -> dict[str, int]:
        """Give those messages back to their queues; returns what each dead worker held."""


class StoredEvents(Protocol):
    def payload(self, event_id: str) -> dict[str, Any] | None:
        """The Stripe event as the inbox stored it (without secrets), if it is there."""

    def unfinished(self, older_than: timedelta) -> list[dict[str, Any]]:
        """Events left ``received`` or ``failed`` since longer than ``older_than``: id, type, status, times."""

    def purge(self, event_id: str, by: str) -> None:
        """Finish an event ops purged (``purged``) unless it was processed or ignored meanwhile."""


class EventJobs(Protocol):
    def enqueue_event(self, payload: Mapping[str, Any]) -> None: ...


class AuditRun(Protocol):
    def finish(self, count: int, state: str = "finished", detail: Mapping[str, Any] | None = None) -> None:
        """The run's end record: how many it did, ``finished``, ``stopped`` or ``failed``, and what it found."""


class Audit(Protocol):
    def record(self, who: Operator, action: str, selection: Mapping[str, Any], count: int) -> None:
        """A one-step action, done: one record."""

    def start(self, who: Operator, action: str, selection: Mapping[str, Any], count: int) -> AuditRun:
        """A run begins (``count``: what it selected): its start record, now; ``finish`` writes its end."""


class JobStore(Protocol):
    """Background ops jobs (``ops_jobs``): who started which run, how far it got."""

    def create(self, who: Operator, action: str, selection: Mapping[str, Any], total: int) -> str: ...

    def update(self, job_id: str, done: int, state: str = "running", result: Mapping[str, Any] | None = None) -> None:
        """Progress (``done`` of the total); with a state other than ``running``, its end."""

    def get(self, job_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class OpsDeps:
    failures: FailureStore
    queues: QueueAdmin
    audit: Audit
    events: StoredEvents
    jobs: EventJobs
    runs: JobStore
    sleep: Callable[[float], object] = time.sleep


#: A stored payment as the exports read it.
Doc = Mapping[str, Any]


@dataclass(frozen=True)
class Period:
    """``createdAt`` in [start, end); either end open."""

    start: datetime | None = None
    end: datetime | None = None


class PaymentExports(Protocol):
    """Payments newest first (``createdAt``), read in batches rather than all at once."""

    def of_customer(self, customer_id: Any, status: str | None, period: Period) -> Iterator[Doc]:
        """The customer's payments, in ``status`` when given, created in ``period``."""

    def created_in(self, period: Period) -> Iterator[Doc]:
        """Every payment created in ``period``."""


# The payment's story (usecases/story.py): what the ops doors read about one payment.


class StripeUnavailable(Exception):
    """Stripe could not be asked in time, or would not answer: the story goes on without its view."""


class StripeReads(Protocol):
    def payment_view(self, intent_id: str) -> Mapping[str, Any]:
        """``{"intent", "charge", "refunds", "dispute"}`` as Stripe has them now, within a time box.

        Only the fields ops need (no client secret, no card data); ``charge`` and ``dispute`` may be
        None. Raises ``StripeUnavailable`` naming why when Stripe cannot be asked.
        """


class StoryReads(Protocol):
    """Reads of the collections one payment's story spans, each by an index."""

    def find_payments(self, kind: str, value: str, limit: int) -> Sequence[Doc]:
        """Payments, newest first, whose ``kind`` is ``value``: ``intent``, ``object_id`` (``_id`` or
        customer), ``email``."""

    def payment(self, key: str) -> Doc | None:
        """The payment whose ``paymentId`` (``pi_…``) or ``_id`` (24 hex) is ``key``."""

    def events_of(self, object_ids: Sequence[str]) -> Sequence[Doc]:
        """Inbox events about these Stripe objects, without their payloads."""

    def failures_of(self, intent_id: str, event_ids: Sequence[str]) -> Sequence[Doc]:
        """Failure records naming the intent or one of these events, without message or traceback."""

    def emails_of(self, record_id: Any) -> Sequence[Doc]:
        """The payment's notifications (their dedupe keys start with its ``_id``)."""

    def enrollment_of(self, payment: Doc) -> Doc | None:
        """The enrollment the payment activated, else the customer's for the service."""

    def audit_of(self, intent_id: str, event_ids: Sequence[str], failure_ids: Sequence[str]) -> Sequence[Doc]:
        """``ops_audit`` records naming the payment, one of its events or one of its failures."""


# -- payments-ops doctor (usecases/doctor.py) ------------------------------------------------------


class DoctorStripe(Protocol):
    """Stripe's side of the deployment: its webhook endpoints and its clock."""

    #: Which API answered, for the report ("Stripe's webhook endpoints API", "the local Stripe's /_config/webhooks").
    where: str

    def webhook_endpoints(self) -> list[Endpoint]: ...

    def create_command(self, url: str, handled: Collection[str]) -> str:
        """The command that creates (or fixes) the endpoint for ``url`` sending ``handled`` types."""

    def undelivered_events(self, types: Collection[str], since: datetime) -> int | None:
        """Events of ``types`` since ``since`` Stripe has not delivered to every endpoint (None: not known here)."""

    def clock_skew(self) -> float:
        """Seconds Stripe's clock (an answer's Date header) is ahead of ours."""


class DoctorWebhook(Protocol):
    def post_signed(self, url: str, body: bytes, secret: str) -> int:
        """POST ``body`` to ``url`` signed as Stripe signs with ``secret``; the HTTP status."""


class DoctorStores(Protocol):
    def redis_error(self) -> str | None: ...

    def mongo_error(self) -> str | None: ...

    def expected_indexes(self) -> list[IndexSpec]:
        """Every index the code creates (adapters/indexes.py)."""

    def present_indexes(self) -> dict[str, dict[str, tuple[tuple[str, int], ...]]]:
        """Collection → index name → keys, as the database has them."""


class DoctorQueue(Protocol):
    heartbeat_timeout_seconds: float

    def live_workers(self) -> int:
        """Worker processes whose broker heartbeat is younger than the timeout."""

    def send_probe(self) -> str:
        """Enqueue a signed probe message for the workers; its id."""

    def probe_answer(self, probe_id: str) -> str | None:
        """The worker that ran the probe, once one has."""

    def probe_refusal(self, probe_id: str) -> str | None:
        """Why a worker refused the probe, if one recorded a refusal."""


class DoctorMail(Protocol):
    #: ``host:port`` of ``SMTP_URL`` (None: not set).
    target: str | None

    def login(self) -> bool:
        """Connect, STARTTLS when configured, log in when a user is configured, quit; sends nothing.
        True if a login was made; raises what the server answered otherwise."""


@dataclass(frozen=True)
class DoctorPorts:
    stripe: DoctorStripe
    webhook: DoctorWebhook
    stores: DoctorStores
    queue: DoctorQueue
    mail: DoctorMail
    sleep: Callable[[float], object] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


class SuccessFacts(Protocol):
    """What the success metrics read (``usecases.success_metrics``), narrow facts over a time range."""

    def payments(self, start: datetime, end: datetime) -> list[PaymentFacts]:
        """Every payment created, paid, activated, or failed/canceled for now in ``[start, end)``."""

    def events(self, start: datetime, end: datetime) -> list[EventFacts]:
        """Every Stripe event first received in ``[start, end)``."""


class MetricSnapshots(Protocol):
    """The last measurement of each window, shared by every process (``usecases.success_metrics``)."""

    def load(self, window: str) -> tuple[datetime, dict[str, Any]] | None:
        """When the window was last measured, and what was measured; None if never."""

    def claim(self, window: str, holder: str, now: datetime, lease: timedelta) -> bool:
        """Take the window's next measurement for ``holder`` until ``now + lease``; False while another holds it."""

    def save(self, window: str, measured_at: datetime, result: Mapping[str, Any]) -> None:
        """Keep a measurement (and let go of the claim on the window)."""


# The alert evaluator's ports (usecases/alerts.py): the facts the rules compare, and each rule's state.


class WorkerHealth(Protocol):
    def workers_alive(self, now_ms: int | None = None) -> int:
        """Worker processes whose Dramatiq heartbeat is within the timeout at ``now_ms`` (default: now)."""

    def oldest_ages(self, now_ms: int | None = None) -> dict[str, float]:
        """Per queue, seconds its oldest ready message has waited at ``now_ms`` (0 when empty)."""


class DeadLetters(Protocol):
    def dead_since(self, start: datetime) -> int:
        """Jobs recorded as failed for good (``job_failures``) whose last failure is at or after ``start``."""


class IngressRefusals(Protocol):
    def since(self, start: datetime) -> dict[str, int]:
        """Webhook answers ``invalid_signature`` and ``broker_unavailable`` the ingresses counted from ``start``."""


class AlertStates(Protocol):
    def claim_round(self, holder: str, at: datetime, every: timedelta) -> bool:
        """Take the evaluation due at ``at`` (one caller gets True per ``every``)."""

    def states(self) -> Mapping[str, RuleState]: ...

    # Each change is recorded with the email it owes (``due``, None: no email), in the same write.

    def fire(self, name: str, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        """Record that the rule started firing unless it already is; True for the one call that did."""

    def remind(self, name: str, state: RuleState, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        """Record an email at ``at`` if the state is still ``state``; True for the one call that did."""

    def resolve(self, name: str, state: RuleState, at: datetime, value: float | None, due: EmailDue | None) -> bool:
        """Record that the firing in ``state`` is over; True for the one call that did."""

    def owed(self) -> list[EmailDue]:
        """Every email a recorded change still owes (its evaluator died, or the outbox failed)."""

    def paid(self, due: EmailDue) -> None:
        """The outbox has the email: forget it (unless a newer change owes one since)."""


@dataclass(frozen=True)
class AlertDeps:
    health: WorkerHealth
    dead_letters: DeadLetters
    refusals: IngressRefusals
    success: SuccessFacts
    states: AlertStates
    outbox: Outbox
    ops_email: str | None
