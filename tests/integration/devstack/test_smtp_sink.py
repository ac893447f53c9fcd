"""devstack.smtp_sink: a real SMTP server that keeps every message as an .eml file."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import smtplib
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

from .conftest import HOST, SmtpSink


def _send(sink: SmtpSink, message: EmailMessage, login: bool = False) -> None:
    with smtplib.SMTP(HOST, sink.port, timeout=10) as smtp:
        if login:
            smtp.login("app", "secret")
        smtp.send_message(message)


def _message(subject: str, to: str = "buyer@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"Plain body of {subject}\n")
    return message


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_plain_message_becomes_one_eml(smtp_sink: SmtpSink) -> None:
    """A plain message is stored as one .eml with its subject, recipients, body and envelope headers."""
    message = _message("Your receipt", to="buyer@example.com, other@example.com")
    message["Bcc"] = "audit@example.com"
    _send(smtp_sink, message)

    (path,) = smtp_sink.messages()
    stored = _parse(path.read_bytes())
    assert stored["Subject"] == "Your receipt"
    assert stored["To"] == "buyer@example.com, other@example.com"
    assert stored["X-Sink-Envelope-From"] == "shop@example.com"
    assert stored["X-Sink-Envelope-To"] == "buyer@example.com, other@example.com, audit@example.com"
    assert stored["Bcc"] is None
    assert stored.get_content().strip() == "Plain body of Your receipt"  # CRLF line ends as sent
    assert not list(smtp_sink.directory.glob(".*.tmp"))


def test_multipart_message_keeps_both_parts(smtp_sink: SmtpSink) -> None:
    """A text+HTML message is stored with both alternative parts intact."""
    message = _message("Order shipped")
    message.add_alternative("<p>Order <b>shipped</b></p>\n", subtype="html")
    _send(smtp_sink, message, login=True)  # any AUTH is accepted

    (path,) = smtp_sink.messages()
    stored = _parse(path.read_bytes())
    assert stored["Subject"] == "Order shipped"
    assert stored.get_content_type() == "multipart/alternative"
    plain = stored.get_body(("plain",))
    html = stored.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert plain.get_content().strip() == "Plain body of Order shipped"
    assert html.get_content().strip() == "<p>Order <b>shipped</b></p>"


def test_concurrent_messages_get_distinct_files(smtp_sink: SmtpSink) -> None:
    """Twenty messages sent at once from threads give twenty distinct files."""
    subjects = {f"Message {i}" for i in range(20)}
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda s: _send(smtp_sink, _message(s)), subjects))

    paths = smtp_sink.messages()
    assert len(paths) == 20
    assert {_parse(p.read_bytes())["Subject"] for p in paths} == subjects


def test_exits_cleanly_on_sigint(smtp_sink: SmtpSink) -> None:
    """SIGINT stops the sink with exit code 0."""
    assert smtp_sink.child.proc is not None
    os.kill(smtp_sink.child.pid, signal.SIGINT)
    assert smtp_sink.child.proc.wait(10) == 0
