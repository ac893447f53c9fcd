"""A customer pays for a course and is enrolled exactly once, and both sides are told (issue 4).

Real HTTP, Redis, worker process, local Stripe (localstripe) and SMTP server.
"""

from __future__ import annotations

from typing import Any

import httpx

from devstack.pay import pay
from devstack.stack import Stack
from payments_ops import events
from tests.e2e.shoppers import Shopper, new_shopper
from tests.support import mails_to, signed, wait_for


def enrollment(db: Any, shopper: Shopper) -> Any:
    return db.enrollments.find_one({"customerId": shopper.customer_id})


def both_mails(stack: Stack, shopper: Shopper) -> list[Any]:
    return mails_to(stack.mail_dir, shopper.customer_email, shopper.specialist_email)


def post_signed(http: httpx.Client, stack: Stack, event: dict[str, Any]) -> None:
    body, headers = signed(event, stack.webhook_secret)
    assert http.post("/api/webhooks/stripe", content=body, headers=headers).status_code == 200


def stored_intent_event(db: Any, event_type: str, intent_id: str, **changes: Any) -> dict[str, Any]:
    """A signed-ready event for a payment created through the API, with its real metadata."""
    payment = db.payments.find_one({"paymentId": intent_id})
    metadata = events.intent_metadata(payment)
    intent = events.payment_intent(event_type, intent_id, payment["amount"], payment["currency"], metadata)
    intent.update(changes)
    return events.event(event_type, intent)


def test_happy_path_enrolls_once_and_emails_both_sides(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """create-intent → pay with pm_card_visa → localstripe's webhook → active enrollment, two emails."""
    shopper = new_shopper(stack, stack_db)
    answer = shopper.create_intent(http, amount=49900)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["amount"], body["currency"], body["status"]) == (49900, "INR", "pending")
    assert body["clientSecret"].startswith(body["paymentId"])
    assert stack_db.payments.find_one({"paymentId": body["paymentId"]})["status"] == "pending"

    assert pay(stack.urls["stripe"], body["paymentId"]) == "succeeded"
    active = wait_for(lambda: (enrollment(stack_db, shopper) or {}).get("status") == "active", 20, "enrollment")
    assert active
    wait_for(lambda: len(both_mails(stack, shopper)) == 2, 20, "two emails")
    payment = stack_db.payments.find_one({"paymentId": body["paymentId"]})
    enrolled = enrollment(stack_db, shopper)
    assert payment["status"] == "completed" and payment["enrollmentId"] == enrolled["_id"]
    assert (enrolled["paymentId"], enrolled["webhookVerified"], enrolled["paymentStatus"]) == (
        payment["_id"],
        True,
        "completed",
    )
    subjects = sorted(str(m["To"]) for m in both_mails(stack, shopper))
    assert subjects == sorted([shopper.customer_email, shopper.specialist_email])
    assert shopper.create_intent(http).json()["error"]["code"] == "already_enrolled"


def test_a_declined_card_fails_the_payment_and_emails_the_customer_once(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """A declined card: payment failed, one email to the customer, no enrollment."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    assert pay(stack.urls["stripe"], intent_id, "pm_card_chargeCustomerFail") == "requires_payment_method"
    wait_for(lambda: stack_db.payments.find_one({"paymentId": intent_id})["status"] == "failed", 20, "failed")
    wait_for(lambda: len(mails_to(stack.mail_dir, shopper.customer_email)) == 1, 20, "one email")
    assert mails_to(stack.mail_dir, shopper.specialist_email) == []
    assert enrollment(stack_db, shopper) is None
    again = shopper.create_intent(http).json()
    assert (again["paymentId"], again["status"]) == (intent_id, "failed")  # the open payment is reused


def test_duplicates_and_reordering_give_one_enrollment_and_two_emails(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """succeeded delivered twice and before processing ends the same: completed, two emails."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    processing = stored_intent_event(stack_db, "payment_intent.processing", intent_id)
    succeeded = stored_intent_event(stack_db, "payment_intent.succeeded", intent_id)
    succeeded["created"] = processing["created"] + 1
    for event in (succeeded, succeeded, processing):
        post_signed(http, stack, event)
    wait_for(lambda: stack_db.stripe_events.count_documents({"_id": processing["id"], "status": "processed"}), 20)
    wait_for(lambda: len(both_mails(stack, shopper)) == 2, 20, "two emails")
    assert stack_db.payments.find_one({"paymentId": intent_id})["status"] == "completed"
    assert stack_db.enrollments.count_documents({"customerId": shopper.customer_id}) == 1
    assert len(both_mails(stack, shopper)) == 2


def test_a_tampered_amount_never_activates_and_the_next_intent_is_fresh(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """A client amount other than the price is 422; an intent paying less is flagged, and a new intent can be paid."""
    shopper = new_shopper(stack, stack_db)
    refused = shopper.create_intent(http, amount=100)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "amount_mismatch")
    intent_id = shopper.create_intent(http).json()["paymentId"]
    cheap = stored_intent_event(stack_db, "payment_intent.succeeded", intent_id, amount=100, amount_received=100)
    post_signed(http, stack, cheap)
    wait_for(lambda: stack_db.stripe_events.find_one({"_id": cheap["id"], "status": "processed"}), 20)
    payment = stack_db.payments.find_one({"paymentId": intent_id})
    assert payment["reviewRequired"]["reason"] == "amount_mismatch" and payment["status"] == "completed"
    assert enrollment(stack_db, shopper) is None
    assert both_mails(stack, shopper) == []
    fresh = shopper.create_intent(http).json()
    assert fresh["paymentId"] != intent_id and fresh["status"] == "pending"
    assert pay(stack.urls["stripe"], fresh["paymentId"]) == "succeeded"
    wait_for(
        lambda: (enrollment(stack_db, shopper) or {}).get("status") == "active", 20, "the fresh payment's enrollment"
    )


def test_tampered_metadata_never_activates(stack: Stack, http: httpx.Client, stack_db: Any) -> None:
    """A succeeded intent whose metadata names another customer is flagged for review, not activated."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    forged = stored_intent_event(stack_db, "payment_intent.succeeded", intent_id)
    forged["data"]["object"]["metadata"]["customerId"] = str(new_shopper(stack, stack_db).customer_id)
    post_signed(http, stack, forged)
    wait_for(lambda: stack_db.stripe_events.find_one({"_id": forged["id"], "status": "processed"}), 20)
    assert stack_db.payments.find_one({"paymentId": intent_id})["reviewRequired"]["reason"] == "metadata_mismatch"
    assert enrollment(stack_db, shopper) is None


def test_confirm_payment_activates_and_the_webhook_only_verifies(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """confirm-payment activates from Stripe's word; the webhook then sets webhookVerified, no more emails."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    early = http.post("/api/payments/confirm-payment", json={"paymentIntentId": intent_id}, headers=shopper.auth)
    assert early.json() == {"status": "pending", "enrollmentId": None}
    assert pay(stack.urls["stripe"], intent_id) == "succeeded"
    confirmed = http.post("/api/payments/confirm-payment", json={"paymentIntentId": intent_id}, headers=shopper.auth)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "completed"
    enrolled = wait_for(lambda: enrollment(stack_db, shopper), 10, "enrollment")
    assert confirmed.json()["enrollmentId"] == str(enrolled["_id"])
    wait_for(lambda: enrollment(stack_db, shopper)["webhookVerified"] is True, 20, "the webhook's verification")
    wait_for(lambda: len(both_mails(stack, shopper)) == 2, 20, "two emails")
    assert stack_db.enrollments.count_documents({"customerId": shopper.customer_id}) == 1
    assert len(both_mails(stack, shopper)) == 2


def test_confirm_payment_after_the_mern_app_cancelled_the_enrollment_keeps_it_cancelled(
    stack: Stack, http: httpx.Client, stack_db: Any
) -> None:
    """The old pi_ confirmed again after a cancellation: Stripe still says succeeded, the enrollment stays cancelled."""
    shopper = new_shopper(stack, stack_db)
    intent_id = shopper.create_intent(http).json()["paymentId"]
    assert pay(stack.urls["stripe"], intent_id) == "succeeded"
    wait_for(lambda: (enrollment(stack_db, shopper) or {}).get("status") == "active", 20, "enrollment")
    wait_for(lambda: len(both_mails(stack, shopper)) == 2, 20, "two emails")
    stack_db.enrollments.update_one({"customerId": shopper.customer_id}, {"$set": {"status": "cancelled"}})
    theirs = {"template": {"$ne": "ops_alert"}}  # the stack's workers may email an alert at any minute
    notifications = stack_db.notifications.count_documents(theirs)
    confirmed = http.post("/api/payments/confirm-payment", json={"paymentIntentId": intent_id}, headers=shopper.auth)
    assert confirmed.status_code == 200, confirmed.text
    cancelled = enrollment(stack_db, shopper)
    assert confirmed.json() == {"status": "completed", "enrollmentId": str(cancelled["_id"])}
    assert cancelled["status"] == "cancelled"
    assert stack_db.notifications.count_documents(theirs) == notifications  # the activation path asked for nothing
    again = shopper.create_intent(http).json()
    assert again["paymentId"] != intent_id and again["status"] == "pending"  # buying again is a new payment
