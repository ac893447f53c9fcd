"""The mailer: the message it builds, and its SMTP connection: one per thread, reused across
emails, dropped on a fault; the ``withdrawn`` check runs before each try and again once a new
connection is up."""

from __future__ import annotations

from collections.abc import Iterator
from threading import Lock
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.mailer import Mailer
from devstack.procs import free_port
from usecases.ports import Withdrawn

HOST = "127.0.0.1"


class Counting:
    """An aiosmtpd handler that counts greetings (one per connection) and keeps what it was given."""

    def __init__(self) -> None:
        self.lock = Lock()
        self.greetings = 0
        self.recipients: list[str] = []

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


class Server:
    """An aiosmtpd server on a fixed port that can be restarted (a controller runs once)."""

    def __init__(self) -> None:
        self.handler, self.port = Counting(), free_port()
        self.controller = self._start()

    def _start(self) -> Controller:
        controller = Controller(self.handler, hostname=HOST, port=self.port)
        controller.start()
        return controller

    def restart(self) -> None:
        self.controller.stop()
        self.controller = self._start()


@pytest.fixture
def server() -> Iterator[tuple[Server, Counting]]:
    running = Server()
    yield running, running.handler
    running.controller.stop()


def mailer_for(server: Server) -> Mailer:
    return Mailer(f"smtp://{HOST}:{server.port}", "Payments <payments@example.com>")


def send(mailer: Mailer, to: str, **kwargs: Any) -> None:
    mailer.send(to, "Subject", "text\n", "<p>html</p>\n", f"<{to}@test>", **kwargs)


def test_one_thread_sends_every_email_over_one_connection(server: tuple[Server, Counting]) -> None:
    controller, handler = server
    mailer = mailer_for(controller)
    try:
        for n in range(5):
            send(mailer, f"user{n}@example.com")
    finally:
        mailer.drop()
    assert handler.recipients == [f"user{n}@example.com" for n in range(5)]
    assert handler.greetings == 1


def test_a_connection_the_server_dropped_is_replaced_and_the_email_still_goes(
    server: tuple[Server, Counting],
) -> None:
    controller, handler = server
    mailer = mailer_for(controller)
    try:
        send(mailer, "first@example.com")
        controller.restart()  # the server goes away with the idle connection, and comes back
        send(mailer, "second@example.com")
    finally:
        mailer.drop()
    assert handler.recipients == ["first@example.com", "second@example.com"]
    assert handler.greetings == 2


def test_an_email_withdrawn_before_it_is_handed_over_is_not_sent(server: tuple[Server, Counting]) -> None:
    controller, handler = server
    mailer = mailer_for(controller)
    asked: list[int] = []

    def withdrawn() -> str | None:
        asked.append(handler.greetings)
        return "no longer true: the payment is completed now" if len(asked) == 2 else None

    try:
        with pytest.raises(Withdrawn, match="completed"):
            send(mailer, "customer@example.com", withdrawn=withdrawn)
        send(mailer, "next@example.com")  # the connection stays usable: nothing was started on it
    finally:
        mailer.drop()
    assert asked == [0, 0]  # before connecting, and once connected (no EHLO or MAIL yet)
    assert handler.recipients == ["next@example.com"]
    assert handler.greetings == 1


def test_the_message_on_the_wire_reads_back_as_written() -> None:
    """Non-ASCII names, a long non-ASCII subject and bodies: 7-bit lines of at most 78 characters
    on the wire, the same text when read."""
    import email
    import email.policy

    mailer = Mailer("smtp://127.0.0.1:25", "Paiements Élodie <payments@example.com>")
    subject = "Réservé : votre inscription à « Yoga pour débutants » est confirmée, très bientôt"
    text, html = "Bonjour Ásha,\n\n₹1,499.00 reçus.\n" * 9, "<p>Bonjour Ásha,</p>\n<p>₹1,499.00 reçus.</p>\n"
    wire = mailer.build("Ásha Rao <asha@example.com>", subject, text, html, "<k@payments-pipeline>")
    assert wire.isascii()
    assert all(len(line) <= 78 for line in wire.split(b"\r\n"))
    assert b"\n" not in wire.replace(b"\r\n", b"")  # CRLF line ends only
    read = email.message_from_bytes(wire, policy=email.policy.default)
    assert not read.defects and all(not part.defects for part in read.iter_parts())
    assert (str(read["From"]), str(read["To"]), str(read["Subject"])) == (
        "Paiements Élodie <payments@example.com>",
        "Ásha Rao <asha@example.com>",
        subject,
    )
    assert (read["Message-ID"], read["Auto-Submitted"], read.get_content_type()) == (
        "<k@payments-pipeline>",
        "auto-generated",
        "multipart/alternative",
    )
    assert read["Date"].datetime is not None
    assert [part.get_content() for part in read.iter_parts()] == [text, html]


def test_a_long_ascii_subject_is_folded_and_a_line_break_is_refused() -> None:
    import email
    import email.policy

    mailer = Mailer("smtp://127.0.0.1:25", "payments@example.com")
    subject = " ".join(["enrolled"] * 30)
    wire = mailer.build("asha@example.com", subject, "t\n", "<p>t</p>\n", "<k@payments-pipeline>")
    assert all(len(line) <= 78 for line in wire.split(b"\r\n"))
    assert str(email.message_from_bytes(wire, policy=email.policy.default)["Subject"]) == subject
    with pytest.raises(ValueError, match="line break in an address"):
        mailer.build("asha@example.com\r\nBcc: x@example.com", "s", "t\n", "<p>t</p>\n", "<k@payments-pipeline>")
