"""Email out: Jinja2 templates rendered to subject, text and HTML, sent over SMTP.

``SMTP_URL`` is ``smtp://[user:pass@]host[:port][?starttls=1]`` or ``smtps://[user:pass@]host[:port]``.
tenacity retries one send a few times for brief faults (connection refused or reset, timeouts,
the server hanging up, 4xx replies); a 5xx refusal of the recipient or of the message is
``Undeliverable`` at once, and anything longer fails the call (``NotSent``) so the job's own retries
take over. The password is kept out of ``repr``, log lines and error messages. The errors raised are
the email port's (``usecases.ports``): the use case catches them without knowing Jinja2 or smtplib.

Each worker thread keeps one SMTP connection and reuses it across messages (a new connection per
email cost much of the worker's CPU: docs/performance.md#figures-from-code-comments); any fault
drops it, and the next try connects afresh. Before each try, and again once a new connection is up,
the caller's ``withdrawn`` check runs: an email that stopped being true while a try waited (or while
the connection was made) is never sent.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from jinja2 import Environment, StrictUndefined, TemplateError, TemplateNotFound, select_autoescape
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from adapters import email_wire, templating
from adapters.settings import Settings
from usecases.ports import BadTemplate, NotSent, Undeliverable, Withdrawn

#: Seconds any one SMTP socket operation may take.
SMTP_TIMEOUT = 10.0

#: Seconds a thread's connection may sit idle and still be reused: servers drop idle clients
#: (RFC 5321 asks them to wait 5 minutes; many wait less), and a dropped one costs a failed try.
IDLE_REUSE = 30.0

_TEMPLATE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}


class MailerNotConfigured(RuntimeError):
    """No ``SMTP_URL`` is set, so nothing can be sent (the notification stays pending)."""


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    ssl: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://user:pass@host:587?starttls=1`` or ``smtps://host:465`` as a connection target."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP URL must look like smtp://[user:pass@]host[:port] or smtps://host[:port]")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    secure = parts.scheme == "smtps"
    starttls = not secure and query.get("starttls", "").lower() in _TRUE
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if secure else 587 if starttls else 25),
        ssl=secure,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _codes(error: BaseException) -> list[int]:
    """The SMTP reply codes an error carries (one per refused recipient for ``SMTPRecipientsRefused``)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return [int(code) for code, _ in error.recipients.values()]
    if isinstance(error, smtplib.SMTPResponseException):
        return [int(error.smtp_code)]
    return []


def transient(error: BaseException) -> bool:
    """Faults worth retrying within one attempt: network trouble, a hang-up, a 4xx reply."""
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    codes = _codes(error)
    if codes:
        return all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPException):
        return False  # e.g. STARTTLS not offered: a configuration problem, retrying at once cannot help
    return isinstance(error, OSError)  # refused, reset, timed out, DNS failure, unreachable


def permanent(error: BaseException) -> bool:
    """A 5xx refusal of the recipient or of the message itself, as opposed to one of our configuration.

    A refused login or sender address (5xx too) is a configuration fault shared by every email;
    it fails the attempt so the job retries, rather than failing this notification for good.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError):
        return any(code >= 500 for code in _codes(error))
    return False


def describe(error: BaseException) -> str:
    """A short, address-free description: the type and the SMTP code, or the OS error."""
    codes = _codes(error)
    if codes:
        return f"{type(error).__name__} {'/'.join(str(c) for c in codes)}"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_retry_brief_faults = retry(
    retry=retry_if_exception(transient),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


@functools.lru_cache(maxsize=4096)
def _parse(value: str) -> tuple[str, str]:
    """``(display name, address)``; cached: recipients repeat, and parsing is slow.

    How slow: docs/performance.md#figures-from-code-comments.
    """
    return email.utils.parseaddr(value)


def _address(value: str) -> str:
    """``Name <address>`` with the display name encoded when it is not plain ASCII."""
    if "\r" in value or "\n" in value:  # parseaddr would drop the break and keep what follows
        raise ValueError("a line break in an address")
    display, address = _parse(value)
    return email_wire.address(display, address) if address else value


def _never() -> str | None:
    return None


def _check(withdrawn: Callable[[], str | None]) -> None:
    reason = withdrawn()
    if reason is not None:
        raise Withdrawn(reason)


class Mailer:
    """Renders the email templates and sends one message per call, on its thread's SMTP connection.

    Thread-safe: worker threads share one instance, each with a connection of its own.
    """

    def __init__(self, smtp_url: str | None, email_from: str, *, timeout: float = SMTP_TIMEOUT) -> None:
        self.target = parse_smtp_url(smtp_url) if smtp_url else None
        self.email_from = email_from
        self.envelope_from = _parse(email_from)[1] or email_from
        self.from_header = _address(email_from)
        self.timeout = timeout
        self.local = threading.local()
        self.env = Environment(
            # ``templates/emails/<name>/{subject.txt,body.txt,body.html}``, from the installed ``templates`` package.
            loader=templating.loader(),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            auto_reload=False,  # templates ship with the code: no stat() per render to see if they changed
            trim_blocks=True,
            lstrip_blocks=True,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(settings.smtp_url, settings.email_from)

    def __repr__(self) -> str:
        where = f"{self.target.host}:{self.target.port}" if self.target else "unconfigured"
        return f"Mailer({where}, from={self.email_from!r})"

    def render(self, template: str, context: Mapping[str, str]) -> tuple[str, str, str]:
        """``(subject, text, html)`` of ``templates/emails/<template>/``; any missing key raises.

        Raises ``BadTemplate`` (from Jinja2's ``TemplateNotFound``, ``UndefinedError``, …): retrying cannot help.
        """
        try:
            if not _TEMPLATE_NAME.match(template):
                raise TemplateNotFound(template)
            values = dict(context)
            base = f"emails/{template}"
            subject = self.env.get_template(f"{base}/subject.txt").render(values)
            text = self.env.get_template(f"{base}/body.txt").render(values)
            html = self.env.get_template(f"{base}/body.html").render(values)
        except TemplateError as error:
            raise BadTemplate(f"{type(error).__name__}: {error}") from error
        # A subject is one header line: collapse whitespace (and any newline a value carried).
        return " ".join(subject.split()), text.rstrip() + "\n", html.rstrip() + "\n"

    def build(self, to: str, subject: str, text: str, html: str, message_id: str) -> bytes:
        """The multipart/alternative message as it goes on the wire (``email_wire.compose``)."""
        headers = [
            ("From", self.from_header),
            ("To", _address(to)),
            ("Subject", subject),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Message-ID", message_id),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no out-of-office replies, please
        ]
        return email_wire.compose(headers, text, html)

    def send(
        self, to: str, subject: str, text: str, html: str, message_id: str, withdrawn: Callable[[], str | None] = _never
    ) -> None:
        """Send one email; brief faults are retried here, a 5xx refusal raises ``Undeliverable``, a
        fault that outlasts the brief retries ``NotSent`` (with ``describe``'s address-free text).

        ``message_id`` is the stable ``Message-ID`` header, the same for every resend of one notification.
        ``withdrawn`` runs before each try and once connected; a reason it gives raises ``Withdrawn``.
        """
        if self.target is None:
            raise MailerNotConfigured("SMTP_URL is not set")
        address = _parse(to)[1]
        if address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
            raise Undeliverable("malformed recipient address")
        try:
            message = self.build(to, subject, text, html, message_id)
        except Exception as error:  # building is pure: the same input fails the same way every time
            raise Undeliverable(f"cannot build the message: {type(error).__name__}") from error
        try:
            _retry_brief_faults(self._deliver)(message, address, withdrawn)
        except OSError as error:  # smtplib's errors are OSErrors too
            if permanent(error):
                raise Undeliverable(describe(error)) from error
            raise NotSent(describe(error)) from error

    def _deliver(self, message: bytes, address: str, withdrawn: Callable[[], str | None]) -> None:
        _check(withdrawn)  # before each try, even one that cannot connect (the server is down)
        smtp, fresh = self._connection()
        if fresh:
            _check(withdrawn)  # connecting may have waited: ask again before the server has it
        try:
            smtp.sendmail(self.envelope_from, [address], message)
        except BaseException:
            # The server's state is unknown mid-transaction (or the time limit interrupted it):
            # never reuse it (nor wait for its QUIT); the next try starts on a fresh connection.
            self.drop(polite=False)
            raise
        self.local.used = time.monotonic()

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """This thread's open connection, or a new one (greeting, STARTTLS and login done); True if new."""
        smtp: smtplib.SMTP | None = getattr(self.local, "smtp", None)
        if smtp is not None and time.monotonic() - self.local.used < IDLE_REUSE:
            return smtp, False
        self.drop()
        smtp = self._open()
        self.local.smtp, self.local.used = smtp, time.monotonic()
        return smtp, True

    def _open(self) -> smtplib.SMTP:
        """A new connection: greeting, STARTTLS when configured, login when a user is configured."""
        target = self.target
        if target is None:
            raise MailerNotConfigured("SMTP_URL is not set")
        smtp: smtplib.SMTP
        if target.ssl:
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
        try:
            if target.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if target.username is not None:
                smtp.login(target.username, target.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def check_login(self) -> bool:
        """Connect and log in as sending does, then quit; sends nothing (``payments-ops doctor``).
        True if a login was made (False: no user configured); raises what the server answered."""
        smtp = self._open()
        try:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        finally:
            smtp.close()
        return self.target is not None and self.target.username is not None

    def drop(self, *, polite: bool = True) -> None:
        """Close this thread's connection, if any, after a QUIT when ``polite`` (a failed one changes nothing)."""
        smtp: smtplib.SMTP | None = getattr(self.local, "smtp", None)
        self.local.smtp = None
        if smtp is None:
            return
        # Not ``with smtp``: QUIT may raise, and that must not turn a sent email into a failed try.
        try:
            if polite:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
        finally:
            smtp.close()
