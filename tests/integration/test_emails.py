"""Emails end to end inside one process: outbox in MongoDB, Redis queue, real worker, real SMTP sink.

The outbox: docs/data.md#notifications-the-outbox.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import functools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.common import current_millis

from adapters.failures import MongoFailures
from adapters.mailer import Mailer
from adapters.mongo import MongoPayments, now
from adapters.outbox import MongoOutbox, ensure_outbox_indexes
from adapters.queue import EMAILS_ACTOR, EMAILS_QUEUE, Broker, notification_message, send
from adapters.settings import Settings
from devstack.procs import Child, free_port, python_module
from domain.notices import message_id_for
from payments_ops.simulate import pending_payment
from tests.support import queued_messages, wait_for
from tests.unit.test_email_templates import CONTEXTS
from workers.broker import build_worker_broker
from workers.composition import worker_middleware
from workers.emails import declare_emails_actor
from workers.middleware.failures import RecordFailures
from workers.middleware.sweeper import NotificationSweeper, sweep_age

HOST = "127.0.0.1"
DEAD = f"{EMAILS_QUEUE}.XQ"
CONTEXT = CONTEXTS["enrollment_confirmation"]
SUBJECT = "You're enrolled in Yoga for Beginners"


@dataclass
class Sink:
    """``devstack.smtp_sink`` as a child process that can be stopped and started again on its port."""

    port: int
    directory: Path
    log_dir: Path
    child: Child | None = None

    def start(self) -> None:
        argv = python_module(
            "devstack.smtp_sink", "--host", HOST, "--port", str(self.port), "--dir", str(self.directory)
        )
        child = self.child = Child("smtp_sink", argv, self.log_dir).start()
        ready = f"smtp sink listening on {HOST}:{self.port}"
        child.wait_until(lambda: ready in child.log_path.read_text(errors="replace"), 20.0, "ready line")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for path in sorted(self.directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


@dataclass
class Emails:
    broker: Broker
    worker: dramatiq.Worker
    outbox: MongoOutbox
    settings: Settings
    sink: Sink

    def drain(self) -> None:
        """Wait until the emails queue (with its delayed retries) is empty and the worker idle."""
        self.broker.join(EMAILS_QUEUE, timeout=15_000)
        self.worker.join()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    """A fresh SMTP sink on a free port, writing into this test's tmp dir."""
    server = Sink(free_port(), tmp_path / "mail", tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def emails(settings: Settings, db: Any, sink: Sink) -> Iterator[Emails]:
    """The emails actor and the sweep on a real broker, with an in-process worker pointed at the sink."""
    tuned = dataclasses.replace(
        settings,
        smtp_url=f"smtp://app:secret@{HOST}:{sink.port}",
        email_from="Payments <payments@example.com>",
        email_max_retries=10,
        notification_sweep_seconds=1,
    )
    broker = build_worker_broker(tuned, worker_middleware(tuned, [RecordFailures(MongoFailures(db))]))
    broker.flush_all()
    ensure_outbox_indexes(db)
    outbox = MongoOutbox(db, broker)
    broker.add_middleware(
        NotificationSweeper(
            outbox, functools.partial(send, broker), tuned.notification_sweep_seconds, older_than=sweep_age(tuned)
        )
    )
    declare_emails_actor(broker, outbox, Mailer.from_settings(tuned), MongoPayments(db), tuned)
    worker = dramatiq.Worker(broker, queues={EMAILS_QUEUE}, worker_timeout=50, worker_threads=4)
    worker.start()
    yield Emails(broker, worker, outbox, tuned, sink)
    worker.stop()
    broker.flush_all()
    broker.close()


def status(emails: Emails, key: str) -> str | None:
    doc = emails.outbox.get(key)
    return str(doc["status"]) if doc else None


def test_a_notification_is_sent_once_with_its_stable_message_id(emails: Emails) -> None:
    """notify stores the notification and one email reaches the recipient with the subject and Message-ID."""
    key = "evt_1:enrollment_confirmation:asha@example.com"
    emails.outbox.notify(key, "enrollment_confirmation", "asha@example.com", CONTEXT)

    (message,) = wait_for(emails.sink.messages, what="the email")
    assert message["X-Sink-Envelope-To"] == "asha@example.com" and message["To"] == "asha@example.com"
    assert message["X-Sink-Envelope-From"] == "payments@example.com"
    assert message["From"] == "Payments <payments@example.com>" and message["Subject"] == SUBJECT
    assert message["Message-ID"] == message_id_for(key) == message_id_for(key)
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in message.iter_parts())
    assert "Hi Asha Rao," in text and "<p>Hi Asha Rao,</p>" in html

    wait_for(lambda: status(emails, key) == "sent", what="sent status")
    doc = emails.outbox.get(key)
    assert doc is not None and doc["attempts"] == 1 and doc["sentAt"] >= doc["createdAt"]
    assert doc["recipient"] == "asha@example.com" and doc["context"] == CONTEXT and "leaseUntil" not in doc
    emails.drain()
    assert len(emails.sink.messages()) == 1


def test_repeated_and_concurrent_notifies_send_one_email(emails: Emails) -> None:
    """The same key asserted twice and then from 5 threads at once is stored once and emailed once."""
    key = "evt_2:enrollment_confirmation:asha@example.com"

    def notify(_: int) -> None:
        emails.outbox.notify(key, "enrollment_confirmation", "asha@example.com", CONTEXT)

    notify(0)
    notify(1)
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(notify, range(5)))

    wait_for(lambda: status(emails, key) == "sent", what="sent status")
    emails.drain()
    notify(2)  # a handler retry after the send: nothing is enqueued, nothing is sent
    emails.drain()
    assert [m["Message-ID"] for m in emails.sink.messages()] == [message_id_for(key)]
    assert emails.outbox.collection.count_documents({"dedupeKey": key}) == 1
    assert emails.outbox.collection.count_documents({}) == 1


@pytest.mark.slow
def test_an_smtp_outage_is_retried_until_the_email_goes_out_once(emails: Emails) -> None:
    """With the SMTP server down the notification waits pending and is retried; after a restart it arrives once."""
    key = "evt_3:enrollment_confirmation:asha@example.com"
    emails.sink.stop()
    emails.outbox.notify(key, "enrollment_confirmation", "asha@example.com", CONTEXT)

    wait_for(lambda: (emails.outbox.get(key) or {}).get("lastError"), what="a failed attempt")
    time.sleep(2)
    doc = emails.outbox.get(key)
    assert doc is not None and doc["status"] in ("pending", "sending") and doc["attempts"] >= 2
    assert "Connection" in doc["lastError"]

    emails.sink.start()
    (message,) = wait_for(emails.sink.messages, what="the email after the restart")
    assert message["Message-ID"] == message_id_for(key)
    wait_for(lambda: status(emails, key) == "sent", what="sent status")
    emails.drain()
    assert len(emails.sink.messages()) == 1


def test_the_sweep_sends_notifications_whose_enqueue_was_lost(emails: Emails) -> None:
    """A pending notification never enqueued and one left sending by a dead worker are both sent once by the sweep."""
    old = now() - timedelta(hours=1)
    base = {"template": "enrollment_confirmation", "context": CONTEXT, "createdAt": old, "updatedAt": old}
    emails.outbox.collection.insert_many(
        [
            {**base, "dedupeKey": "lost", "recipient": "lost@example.com", "status": "pending", "attempts": 0},
            {
                **base,
                "dedupeKey": "crashed",
                "recipient": "crashed@example.com",
                "status": "sending",
                "attempts": 1,
                "leaseUntil": now() - timedelta(seconds=1),
            },
            {**base, "dedupeKey": "done", "recipient": "done@example.com", "status": "sent", "attempts": 1},
            {
                **base,
                "dedupeKey": "fresh",
                "recipient": "fresh@example.com",
                "status": "pending",
                "attempts": 0,
                "updatedAt": now(),
            },
        ]
    )
    assert sorted(emails.outbox.pending_keys(timedelta(minutes=5))) == ["crashed", "lost"]

    wait_for(lambda: len(emails.sink.messages()) >= 3, what="the swept emails")
    wait_for(lambda: all(status(emails, k) == "sent" for k in ("lost", "crashed", "fresh")), what="sent status")
    emails.drain()
    recipients = sorted(str(m["To"]) for m in emails.sink.messages())
    assert recipients == ["crashed@example.com", "fresh@example.com", "lost@example.com"]
    assert {k: emails.outbox.get(k)["attempts"] for k in ("lost", "crashed", "done")} == {  # type: ignore[index]
        "lost": 1,
        "crashed": 2,
        "done": 1,
    }


def test_a_template_error_dead_letters_and_marks_the_notification_failed(emails: Emails, db: Any) -> None:
    """A missing context key fails the notification at once: no email, a dead letter and a failure record."""
    key = "evt_4:enrollment_confirmation:asha@example.com"
    context = {k: v for k, v in CONTEXT.items() if k != "enrollment_url"}
    emails.outbox.notify(key, "enrollment_confirmation", "asha@example.com", context)

    wait_for(lambda: status(emails, key) == "failed", what="failed status")
    doc = emails.outbox.get(key)
    assert doc is not None and doc["attempts"] == 1 and "enrollment_url" in doc["lastError"]
    failure = wait_for(lambda: db.job_failures.find_one({"actor": "send_notification"}), what="failure record")
    assert failure["error"].startswith("PermanentError: notification <") and failure["attempts"] == 1
    wait_for(
        lambda: [tuple(m.args) for m in queued_messages(emails.broker.client, DEAD)] == [(key,)], what="dead letter"
    )
    emails.outbox.notify(key, "enrollment_confirmation", "asha@example.com", context)  # failed is final
    emails.drain()
    assert emails.sink.messages() == [] and status(emails, key) == "failed"


def test_a_refused_recipient_fails_the_notification_without_retries(emails: Emails) -> None:
    """A 5xx refusal of the recipient marks the notification failed after one attempt."""
    key = "evt_5:enrollment_confirmation:bad"
    emails.outbox.notify(key, "enrollment_confirmation", "asha@example.com.", CONTEXT)  # the sink says 553

    wait_for(lambda: status(emails, key) == "failed", what="failed status")
    doc = emails.outbox.get(key)
    assert doc is not None and doc["attempts"] == 1 and doc["lastError"].startswith("refused: SMTPRecipientsRefused 5")
    emails.drain()
    assert emails.sink.messages() == []


def test_an_exhausted_budget_marks_the_notification_failed(emails: Emails, db: Any) -> None:
    """An attempt that fails once the notification's attempts reach the retry budget fails it for good."""
    emails.sink.stop()
    budget = emails.settings.email_max_retries + 1
    at = now()
    emails.outbox.collection.insert_one(
        {
            "dedupeKey": "tired",
            "template": "enrollment_confirmation",
            "recipient": "asha@example.com",
            "context": CONTEXT,
            "status": "pending",
            "attempts": budget - 1,
            "createdAt": at,
            "updatedAt": at,
        }
    )
    send(emails.broker, notification_message("tired"))

    wait_for(lambda: status(emails, "tired") == "failed", what="failed status")
    doc = emails.outbox.get("tired")
    assert doc is not None and doc["attempts"] == budget
    assert doc["lastError"].startswith(f"gave up after {budget} attempts: ConnectionRefusedError")
    failure = wait_for(lambda: db.job_failures.find_one({"actor": "send_notification"}), what="failure record")
    assert "gave up after" in failure["error"]


def test_a_holder_whose_lease_ran_out_cannot_overwrite_the_new_holder(db: Any) -> None:
    """Claims are fenced by their token: a stale worker's mark_sent, release or mark_failed changes nothing."""
    ensure_outbox_indexes(db)
    outbox = MongoOutbox(db, broker=None)  # type: ignore[arg-type]  # no enqueue in this test
    outbox.collection.insert_one({"dedupeKey": "k", "status": "pending", "attempts": 0, "updatedAt": now()})
    stale = outbox.claim("k")
    assert stale is not None
    outbox.collection.update_one({"dedupeKey": "k"}, {"$set": {"leaseUntil": now() - timedelta(seconds=1)}})
    fresh = outbox.claim("k")
    assert fresh is not None and fresh["claimToken"] != stale["claimToken"]
    outbox.release("k", stale["claimToken"], "stale holder timed out")
    outbox.mark_failed("k", stale["claimToken"], "stale holder gave up")
    outbox.mark_sent("k", stale["claimToken"])
    doc = outbox.get("k")
    assert doc is not None and (doc["status"], doc["claimToken"], doc["attempts"]) == (
        "sending",
        fresh["claimToken"],
        2,
    )
    outbox.mark_sent("k", fresh["claimToken"])
    sent = outbox.get("k")
    assert sent is not None and sent["status"] == "sent"


def test_the_emails_actor_stops_a_send_before_its_lease_runs_out(emails: Emails) -> None:
    """The actor's time limit is shorter than the claim's lease, so no second worker sends while one still is."""
    actor = emails.broker.get_actor(EMAILS_ACTOR)
    assert actor.options["time_limit"] < emails.outbox.lease.total_seconds() * 1000


def test_a_payment_failed_email_for_a_payment_paid_since_is_cancelled_not_sent(emails: Emails, db: Any) -> None:
    """Events in any order: the decline's email, sent after the payment completed, would be false; it is cancelled."""
    context = {
        "customer_name": "Asha",
        "service_name": "Python 101",
        "amount_display": "INR 499.00",
        "reason": "Your card was declined.",
        "retry_url": "http://app.test/services/1",
    }
    db.payments.insert_many(
        [
            {**pending_payment("pi_paid"), "status": "completed"},
            {**pending_payment("pi_still_failed"), "status": "failed"},
        ]
    )
    emails.outbox.notify("paid", "payment_failed", "paid@example.com", {**context, "payment_id": "pi_paid"})
    emails.outbox.notify("failed", "payment_failed", "failed@example.com", {**context, "payment_id": "pi_still_failed"})
    emails.drain()
    assert [str(m["To"]) for m in emails.sink.messages()] == ["failed@example.com"]
    cancelled = emails.outbox.get("paid")
    assert cancelled is not None and cancelled["status"] == "cancelled" and "completed" in cancelled["lastError"]


def attempt(broker: Broker, worker: str, redis_id: str) -> str:
    """A worker alive (heartbeat now) holding one emails message (in its ack set): its claim holder."""
    broker.client.zadd(f"{broker.namespace}:__heartbeats__", {worker: current_millis()})
    broker.client.sadd(f"{broker.namespace}:__acks__.{worker}.{EMAILS_QUEUE}", redis_id)
    return f"{worker}:{EMAILS_QUEUE}:{redis_id}"


def test_a_claim_goes_to_another_attempt_only_once_the_holders_is_known_over(db: Any, broker: Broker) -> None:
    """A live worker still running the send keeps its claim, even against its own message coming back (a
    redelivery while it was cut off); once its attempt ended, or its worker died, another takes it at once."""
    ensure_outbox_indexes(db)
    outbox = MongoOutbox(db, broker)
    outbox.collection.insert_one({"dedupeKey": "k", "status": "pending", "attempts": 0, "updatedAt": now()})
    running = attempt(broker, "worker-a", "r1")
    first = outbox.claim("k", running)
    assert first is not None
    assert outbox.claim("k", running) is None  # the same message back while worker-a still runs it
    assert outbox.claim("k", attempt(broker, "worker-b", "r1")) is None  # redelivered to another worker meanwhile
    assert outbox.claim("k", attempt(broker, "worker-b", "r2")) is None  # another message for the same email
    broker.client.srem(f"{broker.namespace}:__acks__.worker-a.{EMAILS_QUEUE}", "r1")  # its attempt ended (a fault)
    second = outbox.claim("k", attempt(broker, "worker-b", "r3"))
    assert second is not None and second["claimToken"] != first["claimToken"] and second["attempts"] == 2
    broker.client.zadd(f"{broker.namespace}:__heartbeats__", {"worker-b": 0})  # worker-b dies inside the send
    third = outbox.claim("k", attempt(broker, "worker-c", "r4"))
    assert third is not None and third["claimHolder"] == f"worker-c:{EMAILS_QUEUE}:r4"
    outbox.mark_sent("k", first["claimToken"])  # the dead attempts' tokens are fenced off
    outbox.mark_sent("k", second["claimToken"])
    doc = outbox.get("k")
    assert doc is not None and (doc["status"], doc["attempts"]) == ("sending", 3)
