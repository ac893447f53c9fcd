"""The email templates: each renders subject, text and HTML from exactly its context keys."""

from __future__ import annotations

import pytest
from jinja2 import TemplateNotFound, UndefinedError

from adapters.mailer import Mailer, parse_smtp_url
from usecases.ports import BadTemplate

CONTEXTS: dict[str, dict[str, str]] = {
    "enrollment_confirmation": {
        "customer_name": "Asha Rao",
        "service_name": "Yoga for Beginners",
        "service_type": "course",
        "amount_display": "₹1,499.00",
        "payment_id": "pi_123",
        "enrollment_url": "http://localhost:5173/enrollments/abc",
    },
    "specialist_new_enrollment": {
        "specialist_name": "Dr. Mehta",
        "customer_name": "Asha Rao",
        "service_name": "Yoga for Beginners",
        "amount_display": "₹1,499.00",
        "payment_id": "pi_123",
        "dashboard_url": "http://localhost:5173/dashboard",
    },
    "payment_failed": {
        "customer_name": "Asha Rao",
        "service_name": "Yoga for Beginners",
        "amount_display": "₹1,499.00",
        "reason": "Your card was declined.",
        "retry_url": "http://localhost:5173/checkout/abc",
        "payment_id": "pi_123",
    },
    "refund_confirmation": {
        "customer_name": "Asha Rao",
        "service_name": "Yoga for Beginners",
        "amount_display": "₹1,499.00",
        "refund_display": "₹500.00",
        "remaining_note": "₹999.00 of the payment stays paid.",
        "refund_id": "re_123",
        "payment_id": "pi_123",
    },
    "refund_notice": {
        "specialist_name": "Dr. Mehta",
        "customer_name": "Asha Rao",
        "service_name": "Yoga for Beginners",
        "amount_display": "₹1,499.00",
        "refund_display": "₹500.00",
        "remaining_note": "₹999.00 of the payment stays paid.",
        "refund_id": "re_123",
        "payment_id": "pi_123",
        "dashboard_url": "http://localhost:5173/specialist/dashboard",
    },
    "refund_refused": {
        "service_name": "Yoga for Beginners",
        "refund_display": "₹500.00",
        "reason": "Charge ch_1 has already been refunded.",
        "payment_id": "pi_123",
    },
    "dispute_opened": {
        "service_name": "Yoga for Beginners",
        "customer_name": "Asha Rao",
        "dispute_amount": "₹1,499.00",
        "dispute_reason": "fraudulent",
        "dispute_id": "dp_123",
        "payment_id": "pi_123",
        "due_by": "2026-12-10 23:59 UTC",
    },
    "dispute_closed": {
        "service_name": "Yoga for Beginners",
        "customer_name": "Asha Rao",
        "dispute_amount": "₹1,499.00",
        "dispute_reason": "fraudulent",
        "dispute_id": "dp_123",
        "payment_id": "pi_123",
        "outcome": "won",
    },
    "ops_review_required": {
        "reason": "amount_mismatch",
        "payment_id": "pi_123",
        "event_id": "evt_456",
        "details": "expected 149900 INR, received 100 INR",
    },
    "ops_refund_failed": {
        "payment_id": "pi_123",
        "request_id": "9f1c2e",
        "refund_display": "₹500.00",
        "requested_by": "asha@example.com",
        "reason": "it could not be carried out in time",
    },
    "ops_alert": {
        "rule": "PaymentSuccessRateLow",
        "state": "firing",
        "severity": "critical",
        "summary": "Under 98% of the payments that reached an outcome in the last hour were paid",
        "value": "91.0%",
        "threshold": "below 98.0%",
        "since": "2026-12-07 15:00 UTC",
        "runbook": "docs/runbooks.md#paymentsuccessratelow",
    },
}


@pytest.fixture(scope="module")
def mailer() -> Mailer:
    return Mailer(None, "payments@localhost")


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_each_template_renders_subject_text_and_html(mailer: Mailer, name: str) -> None:
    """Every template renders a one-line subject and both bodies, each showing the context's values."""
    context = CONTEXTS[name]
    subject, text, html = mailer.render(name, context)
    assert subject and "\n" not in subject and subject == subject.strip()
    assert text.endswith("\n") and html.lstrip().startswith("<!doctype html>")
    for key, value in context.items():
        if key == "details" or key.endswith("_url"):
            assert value in text and value in html, key
        else:
            assert value in text, key
            assert value.replace("'", "&#39;") in html, key


def test_subjects_read_as_expected(mailer: Mailer) -> None:
    """The subjects name the service, or the reason and payment for ops."""
    subjects = {name: mailer.render(name, context)[0] for name, context in CONTEXTS.items()}
    assert subjects == {
        "enrollment_confirmation": "You're enrolled in Yoga for Beginners",
        "specialist_new_enrollment": "New enrollment: Asha Rao joined Yoga for Beginners",
        "payment_failed": "Your payment for Yoga for Beginners didn't go through",
        "ops_review_required": "[payments] Review required: amount_mismatch (pi_123)",
        "ops_refund_failed": "[payments] Refund request failed: ₹500.00 on pi_123",
        "ops_alert": "[payments] Firing: PaymentSuccessRateLow (91.0%)",
        "refund_confirmation": "Your refund of ₹500.00 for Yoga for Beginners",
        "refund_notice": "A refund of ₹500.00 for Yoga for Beginners",
        "refund_refused": "Your refund request for Yoga for Beginners could not be made",
        "dispute_opened": "A payment for Yoga for Beginners is disputed: evidence due 2026-12-10 23:59 UTC",
        "dispute_closed": "The dispute on Yoga for Beginners is over: won",
    }


def test_an_alert_email_says_whether_it_starts_reminds_or_resolves(mailer: Mailer) -> None:
    """One template for the three alert emails: the subject and first line name which one it is."""
    for state, word, line in (
        ("reminder", "Still firing", "is still firing"),
        ("resolved", "Resolved", "is resolved"),
    ):
        subject, text, html = mailer.render("ops_alert", {**CONTEXTS["ops_alert"], "state": state})
        assert subject == f"[payments] {word}: PaymentSuccessRateLow (91.0%)"
        assert line in text and line in html and "started firing" not in text


def test_html_escapes_a_script_in_a_name_and_text_keeps_it(mailer: Mailer) -> None:
    """A name with markup is escaped in the HTML body and left as typed in the text body and subject."""
    context = {**CONTEXTS["specialist_new_enrollment"], "customer_name": "<script>alert(1)</script>"}
    subject, text, html = mailer.render("specialist_new_enrollment", context)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in text and "<script>alert(1)</script>" in subject


def test_a_newline_in_a_value_cannot_split_the_subject(mailer: Mailer) -> None:
    """Whitespace in a subject is collapsed to one line, so no header can be injected."""
    context = {**CONTEXTS["ops_review_required"], "reason": "odd\r\nBcc: someone@example.com"}
    subject, _, _ = mailer.render("ops_review_required", context)
    assert subject == "[payments] Review required: odd Bcc: someone@example.com (pi_123)"


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_a_missing_context_key_raises(mailer: Mailer, name: str) -> None:
    """Leaving out any one key is an error, never an email with a blank in it."""
    for key in CONTEXTS[name]:
        context = {k: v for k, v in CONTEXTS[name].items() if k != key}
        with pytest.raises(BadTemplate, match=key) as caught:  # the mailer's own error, Jinja2's as its cause
            mailer.render(name, context)
        assert isinstance(caught.value.__cause__, UndefinedError)


def test_an_unknown_or_unsafe_template_name_raises(mailer: Mailer) -> None:
    """Only existing templates with plain names render; a path in the name is refused."""
    for name in ("no_such_template", "../emails/payment_failed", "_layout.html"):
        with pytest.raises(BadTemplate) as caught:
            mailer.render(name, CONTEXTS["payment_failed"])
        assert isinstance(caught.value.__cause__, TemplateNotFound)


def test_no_template_mentions_card_data(mailer: Mailer) -> None:
    """No template has a placeholder for card numbers, CVCs or expiry dates."""
    loader = mailer.env.loader
    assert loader is not None
    names = mailer.env.list_templates(filter_func=lambda name: name.startswith("emails/"))
    assert len(names) > len(CONTEXTS)
    for name in names:
        source = loader.get_source(mailer.env, name)[0].lower()
        assert not any(word in source for word in ("card_number", "cvc", "cvv", "exp_month", "last4")), name


def test_smtp_urls_parse_with_defaults_and_credentials() -> None:
    """smtp:// with STARTTLS and credentials, smtps:// on 465, plain smtp:// on 25; no password in repr."""
    target = parse_smtp_url("smtp://app%40shop:p%40ss@mail.example.com:587?starttls=1")
    assert (target.host, target.port, target.ssl, target.starttls) == ("mail.example.com", 587, False, True)
    assert (target.username, target.password) == ("app@shop", "p@ss") and "p@ss" not in repr(target)
    secure = parse_smtp_url("smtps://mail.example.com")
    assert (secure.port, secure.ssl, secure.starttls, secure.username) == (465, True, False, None)
    assert parse_smtp_url("smtp://127.0.0.1").port == 25
    assert "p@ss" not in repr(Mailer("smtp://u:p%40ss@h:25", "x@y"))
    with pytest.raises(ValueError):
        parse_smtp_url("http://mail.example.com")
