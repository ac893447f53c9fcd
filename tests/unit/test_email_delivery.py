"""Email delivery as a use case (``usecases.emails``), against dumb stores: each claim settled with
its own token, the withdrawn check handed to the mailer, the retry budget, failures for good."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from domain.errors import PermanentError
from domain.notices import message_id_for
from domain.payments import Payment
from tests.fakes import CountedOutcomes, PaymentsByIntent, ScriptedSender, StoredNotifications
from usecases.emails import CANCELLED, SENT, SKIPPED, send_notification, send_notifications
from usecases.ports import BadTemplate, EmailDeps, NotSent, Payments, Undeliverable, Withdrawn

KEY = "pay_1:enrollment_confirmation:asha@example.com"
HOLDER = "worker-a:emails:r1"
BUDGET = 3


def stored(key: str = KEY, template: str = "enrollment_confirmation", **fields: Any) -> dict[str, Any]:
    context = {"customer_name": "Asha", "payment_id": "pi_1"}
    return {"dedupeKey": key, "template": template, "recipient": "asha@example.com", "context": context, **fields}


def deps_for(
    notifications: StoredNotifications, sender: ScriptedSender, payments: PaymentsByIntent | None = None
) -> tuple[EmailDeps, CountedOutcomes]:
    outcomes = CountedOutcomes()
    lookups = cast(Payments, payments or PaymentsByIntent())  # delivery only reads a payment by its intent
    return EmailDeps(notifications, sender, lookups, outcomes, max_attempts=BUDGET), outcomes


def test_a_notification_is_claimed_sent_under_its_message_id_and_marked_with_its_token() -> None:
    notifications, sender = StoredNotifications(stored()), ScriptedSender()
    deps, outcomes = deps_for(notifications, sender)

    assert send_notification(KEY, deps, HOLDER) == SENT

    assert sender.sent == [("asha@example.com", "enrollment_confirmation subject", message_id_for(KEY))]
    assert notifications.calls == [("claim", KEY, HOLDER, None), ("mark_sent", KEY, "token-1", None)]
    assert outcomes.counted == [SENT]


@pytest.mark.parametrize("status", ["sent", "failed", "cancelled", "sending"])
def test_a_notification_it_cannot_claim_is_skipped(status: str) -> None:
    """Sent, failed for good, cancelled, or held by another live attempt: nothing to do."""
    notifications, sender = StoredNotifications(stored(status=status)), ScriptedSender()
    deps, outcomes = deps_for(notifications, sender)

    assert send_notification(KEY, deps, HOLDER) == SKIPPED
    assert (sender.sent, sender.checks, outcomes.counted) == ([], [], [])
    assert notifications.calls == [("claim", KEY, HOLDER, None)]


def test_a_template_error_fails_the_notification_for_good_without_a_send() -> None:
    notifications = StoredNotifications(stored())
    sender = ScriptedSender(render_fault=BadTemplate("UndefinedError: 'enrollment_url' is undefined"))
    deps, outcomes = deps_for(notifications, sender)

    with pytest.raises(PermanentError, match=r"^notification <[0-9a-f]{32}@payments-pipeline>: template "):
        send_notification(KEY, deps, HOLDER)

    reason = "template enrollment_confirmation: UndefinedError: 'enrollment_url' is undefined"
    assert notifications.calls[1:] == [("mark_failed", KEY, "token-1", reason)]
    assert (sender.checks, outcomes.counted) == ([], ["failed"])


def test_a_refusal_for_good_fails_the_notification_after_one_attempt() -> None:
    notifications = StoredNotifications(stored())
    deps, outcomes = deps_for(notifications, ScriptedSender(Undeliverable("SMTPRecipientsRefused 553")))

    with pytest.raises(PermanentError, match="refused: SMTPRecipientsRefused 553"):
        send_notification(KEY, deps, HOLDER)

    assert notifications.calls[1:] == [("mark_failed", KEY, "token-1", "refused: SMTPRecipientsRefused 553")]
    assert notifications.docs[KEY]["attempts"] == 1 and outcomes.counted == ["failed"]


def test_an_email_withdrawn_during_the_send_is_cancelled_not_failed() -> None:
    notifications = StoredNotifications(stored(template="payment_failed"))
    reason = "no longer true: the payment is completed now"
    deps, outcomes = deps_for(notifications, ScriptedSender(Withdrawn(reason)))

    assert send_notification(KEY, deps, HOLDER) == CANCELLED

    assert notifications.calls[1:] == [("cancel", KEY, "token-1", reason)]
    assert outcomes.counted == [CANCELLED]


def test_the_check_handed_to_the_mailer_reads_the_payment_each_time_it_is_asked() -> None:
    """Asked per SMTP try, not once per attempt: a payment paid between two tries withdraws the email."""
    failed = Payment(
        record_id="pay_1", intent_id="pi_1", status="failed", amount=100, currency="inr", last_event_at=None
    )
    payments = PaymentsByIntent(failed)
    sender = ScriptedSender()
    deps, _ = deps_for(StoredNotifications(stored(template="payment_failed")), sender, payments)

    send_notification(KEY, deps, HOLDER)
    (check,) = sender.checks
    assert check() is None
    payments.payments["pi_1"] = dataclasses.replace(failed, status="completed")
    assert check() == "no longer true: the payment is completed now"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (NotSent("ConnectionRefusedError: Connection refused"), "ConnectionRefusedError: Connection refused"),
        (RuntimeError("MongoDB is not answering"), "RuntimeError: MongoDB is not answering"),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_a_fault_gives_the_claim_back_and_is_raised_for_a_retry(fault: Exception, reason: str) -> None:
    notifications = StoredNotifications(stored())
    deps, outcomes = deps_for(notifications, ScriptedSender(fault))

    with pytest.raises(type(fault)):
        send_notification(KEY, deps, HOLDER)

    assert notifications.calls[1:] == [("release", KEY, "token-1", reason)]
    assert notifications.docs[KEY]["status"] == "pending" and outcomes.counted == []


def test_the_retry_claims_afresh_and_settles_with_its_own_token() -> None:
    """Each attempt writes only under the token of its own claim (the outbox fences the others off)."""
    notifications = StoredNotifications(stored())
    deps, outcomes = deps_for(notifications, ScriptedSender(NotSent("SMTPServerDisconnected: gone")))

    with pytest.raises(NotSent):
        send_notification(KEY, deps, "worker-a:emails:r1")
    assert send_notification(KEY, deps, "worker-b:emails:r2") == SENT

    assert [(method, token) for method, _, token, _ in notifications.calls] == [
        ("claim", "worker-a:emails:r1"),
        ("release", "token-1"),
        ("claim", "worker-b:emails:r2"),
        ("mark_sent", "token-3"),
    ]
    assert notifications.docs[KEY]["attempts"] == 2 and outcomes.counted == [SENT]


def test_a_fault_once_the_attempts_reach_the_budget_fails_the_notification_for_good() -> None:
    """Never left pending behind a dead-lettered message: the last attempt of the budget marks it failed."""
    notifications = StoredNotifications(stored(attempts=BUDGET - 1))
    deps, outcomes = deps_for(notifications, ScriptedSender(NotSent("ConnectionRefusedError: Connection refused")))

    with pytest.raises(PermanentError, match=f"gave up after {BUDGET} attempts"):
        send_notification(KEY, deps, HOLDER)

    reason = f"gave up after {BUDGET} attempts: ConnectionRefusedError: Connection refused"
    assert notifications.calls[1:] == [("mark_failed", KEY, "token-1", reason)]
    assert notifications.docs[KEY]["status"] == "failed" and outcomes.counted == ["failed"]


def test_every_key_of_a_message_is_tried_and_a_fault_worth_retrying_is_raised_first() -> None:
    keys = ["a", "b", "c"]
    notifications = StoredNotifications(*(stored(key) for key in keys))
    sender = ScriptedSender(Undeliverable("SMTPDataError 554"), NotSent("SMTPServerDisconnected: gone"))
    deps, outcomes = deps_for(notifications, sender)

    with pytest.raises(NotSent):
        send_notifications(keys, deps, HOLDER)

    assert [(method, key) for method, key, _, _ in notifications.calls if method != "claim"] == [
        ("mark_failed", "a"),
        ("release", "b"),
        ("mark_sent", "c"),
    ]
    assert {holder for method, _, holder, _ in notifications.calls if method == "claim"} == {HOLDER}
    assert outcomes.counted == ["failed", SENT]


def test_a_message_with_only_failures_for_good_raises_the_first_permanent_error() -> None:
    notifications = StoredNotifications(stored("a"), stored("b"))
    sender = ScriptedSender(Undeliverable("SMTPDataError 554"), Undeliverable("SMTPRecipientsRefused 550"))
    deps, _ = deps_for(notifications, sender)

    with pytest.raises(PermanentError, match="SMTPDataError 554"):
        send_notifications(["a", "b"], deps, HOLDER)
    assert [doc["status"] for doc in notifications.docs.values()] == ["failed", "failed"]


def test_a_message_whose_emails_all_went_out_raises_nothing() -> None:
    notifications = StoredNotifications(stored("a"), stored("b", status="sent"))
    sender = ScriptedSender()
    deps, outcomes = deps_for(notifications, sender)

    send_notifications(["a", "b"], deps, None)

    assert [to for to, _, _ in sender.sent] == ["asha@example.com"] and outcomes.counted == [SENT]
