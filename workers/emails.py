"""The email actor and the sweep that re-enqueues notifications left behind (DESIGN §2 "Emails").

``send_notification(*keys)``: a step's emails travel in one message. For each key: claim the
notification (None: already sent, failed, or being sent by another worker, so there is nothing
to do), render, send with the stable ``Message-ID``, mark it sent. The claim is held in this
attempt's name (``adapters.dead_workers.claim_holder``), so a redelivery after its worker died,
or a retry after it failed without giving the claim back, takes it at once. Whether the email still
holds (``usecases.notices.no_longer_true``) is asked before each SMTP try and once connected,
not once per attempt: a decline's email whose send was under way when the payment succeeded is
cancelled, not sent.

- A template error (unknown template, missing context key) or a 5xx refusal of the recipient or
  the message: the notification is marked ``failed`` and ``PermanentError`` sends the message
  to the dead letters at once (recorded in ``job_failures``).
- Any other fault (SMTP down, 4xx, timeouts, a refused login, MongoDB trouble): the notification
  goes back to ``pending`` and the exception is re-raised, so Dramatiq retries with backoff.

Retry budget: ``claim`` counts every attempt in the notification's ``attempts``. An attempt
that fails while ``attempts`` has reached ``email_max_retries + 1`` (the actor's own budget:
the first try and its retries) marks the notification ``failed`` and raises ``PermanentError``,
so a notification is never left ``pending`` behind a dead-lettered message, and the sweep can
never resend it forever. Because every message for a key (duplicates from re-asserting
handlers, sweeps) adds to the same count, this fires on or before the last Dramatiq retry of
any one message; the actor's ``max_retries`` stays as the backstop for faults before the claim
(MongoDB down), which leave the notification for the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import dramatiq
import jinja2
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware
from dramatiq.worker import WorkerThread

from adapters import metrics
from adapters.dead_workers import claim_holder
from adapters.mailer import Undeliverable, Withdrawn, describe
from adapters.outbox import LEASE, message_id_for
from adapters.queue import EMAILS_ACTOR, EMAILS_QUEUE
from adapters.settings import Settings
from domain.errors import PermanentError
from usecases.notices import no_longer_true
from usecases.ports import Payments
from workers.actors import declare_actor

log = logging.getLogger(__name__)

#: Longest one send may run before Dramatiq interrupts it (3 SMTP tries of several 10 s steps
#: fit); shorter than the outbox's lease, so no other worker claims a send that is still running.
TIME_LIMIT = LEASE - timedelta(minutes=1)

#: Behind every other actor (priority 0): of the messages one worker process holds, a thread takes
#: the events and refunds first, so during a burst enrollments are activated without waiting for
#: the emails, which catch up as soon as the burst is drained. The broker also has the emails queue
#: yield (``adapters.queue.Consumer``): one emails message at a time while a process has other work.
EMAILS_PRIORITY = 10


class Outbox(Protocol):
    def claim(self, key: str, holder: str | None = None) -> Mapping[str, Any] | None: ...
    def mark_sent(self, key: str, token: str) -> None: ...
    def release(self, key: str, token: str, error: str) -> None: ...
    def mark_failed(self, key: str, token: str, error: str) -> None: ...
    def cancel(self, key: str, token: str, reason: str) -> None: ...


class Sender(Protocol):
    def drop(self) -> None: ...
    def render(self, template: str, context: Mapping[str, str]) -> tuple[str, str, str]: ...
    def send(
        self, to: str, subject: str, text: str, html: str, message_id: str, withdrawn: Callable[[], str | None]
    ) -> None: ...


def _ref(key: str) -> str:
    """The notification's handle in log lines: its Message-ID (the key may name a recipient)."""
    return message_id_for(key)


class HangUp(Middleware):
    """Each worker thread keeps an SMTP connection: it says goodbye when its thread stops."""

    def __init__(self, mailer: Sender) -> None:
        self.mailer = mailer

    def before_worker_thread_shutdown(self, broker: Broker, thread: WorkerThread) -> None:
        self.mailer.drop()


def declare_emails_actor(
    broker: Broker, outbox: Outbox, mailer: Sender, payments: Payments, settings: Settings
) -> dramatiq.Actor[..., None]:
    """Declare ``send_notification`` on ``broker`` (queue ``emails``) with the email retry policy.

    An email that stopped being true since it was queued (``usecases.notices.no_longer_true``)
    is cancelled instead of sent.
    """
    budget = settings.email_max_retries + 1
    broker.add_middleware(HangUp(mailer))

    def fail(key: str, token: str, attempt: int, reason: str) -> PermanentError:
        outbox.mark_failed(key, token, reason)
        metrics.EMAILS.labels("failed").inc()
        log.error(
            "email %s failed for good", _ref(key), extra={"outcome": "failed", "attempt": attempt, "error": reason}
        )
        return PermanentError(f"notification {_ref(key)}: {reason}")

    def send_one(key: str, holder: str | None) -> None:
        doc = outbox.claim(key, holder)
        if doc is None:
            log.info("email %s already sent, failed or in flight", _ref(key), extra={"outcome": "skipped"})
            return
        attempt, token = int(doc.get("attempts", 1)), str(doc.get("claimToken"))
        template, context = str(doc.get("template")), doc.get("context") or {}
        try:
            subject, text, html = mailer.render(template, context)
        except jinja2.TemplateError as error:
            raise fail(key, token, attempt, f"template {template}: {type(error).__name__}: {error}") from error
        try:
            mailer.send(
                str(doc["recipient"]),
                subject,
                text,
                html,
                message_id_for(key),
                withdrawn=lambda: no_longer_true(template, context, payments),
            )
        except Withdrawn as stale:
            outbox.cancel(key, token, str(stale))
            metrics.EMAILS.labels("cancelled").inc()
            log.info("email %s cancelled: %s", _ref(key), stale, extra={"outcome": "cancelled"})
            return
        except Undeliverable as error:
            raise fail(key, token, attempt, f"refused: {error}") from error
        except Exception as error:
            reason = describe(error)
            if attempt >= budget:
                raise fail(key, token, attempt, f"gave up after {attempt} attempts: {reason}") from error
            outbox.release(key, token, reason)
            log.warning(
                "email %s not sent, will retry",
                _ref(key),
                extra={"outcome": "retry", "attempt": attempt, "error": reason},
            )
            raise
        outbox.mark_sent(key, token)
        metrics.EMAILS.labels("sent").inc()
        log.info("email %s sent (%s)", _ref(key), template, extra={"outcome": "sent", "attempt": attempt})

    def send_notification(*keys: str) -> None:
        """Send each notification; one that fails does not keep the others from their try.

        The first fault worth retrying is raised once all were tried (the retry skips what was
        sent, or failed for good); with only permanent failures, the first ``PermanentError``.
        """
        current = CurrentMessage.get_current_message()
        holder = claim_holder(broker, current) if current is not None and isinstance(broker, RedisBroker) else None
        faults: list[Exception] = []
        for key in keys:
            try:
                send_one(key, holder)
            except Exception as fault:
                faults.append(fault)
        retryable = [f for f in faults if not isinstance(f, PermanentError)]
        if retryable or faults:
            raise (retryable or faults)[0]

    actor: dramatiq.Actor[..., None] = declare_actor(
        broker,
        send_notification,
        name=EMAILS_ACTOR,
        queue=EMAILS_QUEUE,
        max_retries=settings.email_max_retries,
        settings=settings,
        time_limit_ms=int(TIME_LIMIT.total_seconds() * 1000),
        priority=EMAILS_PRIORITY,
    )
    return actor
