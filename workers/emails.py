"""The email actor: hands a message's notification keys to ``usecases.emails.send_notifications``.

The delivery, its retry budget and its dead letters live in the use case; this module wires it to
the outbox, the mailer and the metrics, claims in the attempt's name and hangs up each worker
thread's SMTP connection when the thread stops.
"""

from __future__ import annotations

from datetime import timedelta

import dramatiq
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware
from dramatiq.worker import WorkerThread

from adapters import metrics
from adapters.dead_workers import claim_holder
from adapters.mailer import Mailer
from adapters.outbox import LEASE
from adapters.queue import EMAILS_ACTOR, EMAILS_QUEUE
from adapters.settings import Settings
from usecases.emails import send_notifications
from usecases.ports import EmailDeps, Notifications, Payments
from workers.actors import declare_actor

#: Longest one send may run before Dramatiq interrupts it (3 SMTP tries of several 10 s steps
#: fit); shorter than the outbox's lease, so no other worker claims a send that is still running.
TIME_LIMIT = LEASE - timedelta(minutes=1)

#: Behind every other actor (priority 0): of the messages one worker process holds, a thread takes
#: the events and refunds first, so during a burst enrollments are activated without waiting for
#: the emails, which catch up as soon as the burst is drained. The broker also has the emails queue
#: yield (``adapters.queue.Consumer``): one emails message at a time while a process has other work.
EMAILS_PRIORITY = 10


class HangUp(Middleware):
    """Each worker thread keeps an SMTP connection: it says goodbye when its thread stops."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    def before_worker_thread_shutdown(self, broker: Broker, thread: WorkerThread) -> None:
        self.mailer.drop()


class EmailCounter:
    """``payments_emails_total``: the worker counts each email's outcome as the use case reports it."""

    def count(self, outcome: str) -> None:
        metrics.EMAILS.labels(outcome).inc()


def declare_emails_actor(
    broker: Broker, outbox: Notifications, mailer: Mailer, payments: Payments, settings: Settings
) -> dramatiq.Actor[..., None]:
    """Declare ``send_notification`` on ``broker`` (queue ``emails``) with the email retry policy."""
    budget = settings.email_max_retries + 1  # the first try and its retries
    deps = EmailDeps(
        notifications=outbox, sender=mailer, payments=payments, outcomes=EmailCounter(), max_attempts=budget
    )
    broker.add_middleware(HangUp(mailer))

    def send_notification(*keys: str) -> None:
        current = CurrentMessage.get_current_message()
        holder = claim_holder(broker, current) if current is not None and isinstance(broker, RedisBroker) else None
        send_notifications(keys, deps, holder)

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
