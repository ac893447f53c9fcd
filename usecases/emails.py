"""Email delivery: each notification claimed, rendered, sent with its stable ``Message-ID``, settled.

``send_notifications(keys)``: a step's emails travel in one message. For each key: claim the
notification (None: already sent, failed, or being sent by another attempt, so there is nothing
to do), render, send, mark it sent. The claim is held in the attempt's name (``holder``), so a
redelivery after its worker died, or a retry after it failed without giving the claim back, takes
it at once; every write after the claim is fenced by its token. Whether the email still holds
(``usecases.notices.no_longer_true``) is asked before each SMTP try and once connected, not once
per attempt: a decline's email whose send was under way when the payment succeeded is cancelled.

- A template error (``BadTemplate``) or a refusal for good (``Undeliverable``): the notification
  is marked ``failed`` and ``PermanentError`` sends the message to the dead letters at once.
- Any other fault (SMTP down, 4xx, timeouts, a refused login, MongoDB trouble): the notification
  goes back to ``pending`` and the exception is re-raised, so the actor retries with backoff.

Retry budget: ``claim`` counts every attempt in the notification's ``attempts``. An attempt that
fails while ``attempts`` has reached ``max_attempts`` (the actor's first try and its retries)
marks the notification ``failed`` and raises ``PermanentError``, so a notification is never left
``pending`` behind a dead-lettered message, and the sweep can never resend it forever. Every
message for a key (duplicates from re-asserting handlers, sweeps) adds to the same count, so this
fires on or before the last retry of any one message; the actor's own retry limit stays as the
backstop for faults before the claim (MongoDB down), which leave the notification for the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from domain.errors import PermanentError
from domain.notices import message_id_for
from usecases.notices import no_longer_true
from usecases.ports import BadTemplate, EmailDeps, NotSent, Undeliverable, Withdrawn

log = logging.getLogger(__name__)

#: What became of one notification; all but ``SKIPPED`` are counted (``EmailDeps.outcomes``).
SENT, FAILED, CANCELLED, SKIPPED = "sent", "failed", "cancelled", "skipped"


def send_notifications(keys: Iterable[str], deps: EmailDeps, holder: str | None = None) -> None:
    """Send each notification; one that fails does not keep the others from their try.

    The first fault worth retrying is raised once all were tried (the retry skips what was sent,
    or failed for good); with only permanent failures, the first ``PermanentError``.
    """
    faults: list[Exception] = []
    for key in keys:
        try:
            send_notification(key, deps, holder)
        except Exception as fault:
            faults.append(fault)
    retryable = [f for f in faults if not isinstance(f, PermanentError)]
    if faults:
        raise (retryable or faults)[0]


def send_notification(key: str, deps: EmailDeps, holder: str | None = None) -> str:
    """Claim, render, send and settle one notification: ``sent``, ``cancelled`` or ``skipped``.

    Raises ``PermanentError`` once it is marked ``failed``; any other fault gives the claim back
    (``pending``) and is raised for a retry.
    """
    ref = message_id_for(key)  # the key may name a recipient: log lines and errors carry its Message-ID
    doc = deps.notifications.claim(key, holder)
    if doc is None:
        log.info("email %s already sent, failed or in flight", ref, extra={"outcome": SKIPPED})
        return SKIPPED
    attempt, token = int(doc.get("attempts", 1)), str(doc.get("claimToken"))
    template, context = str(doc.get("template")), doc.get("context") or {}

    def fail(reason: str) -> PermanentError:
        deps.notifications.mark_failed(key, token, reason)
        deps.outcomes.count(FAILED)
        log.error("email %s failed for good", ref, extra={"outcome": FAILED, "attempt": attempt, "error": reason})
        return PermanentError(f"notification {ref}: {reason}")

    def withdrawn() -> str | None:  # the mailer asks before each SMTP try, not once per attempt
        return no_longer_true(template, context, deps.payments)

    try:
        subject, text, html = deps.sender.render(template, context)
        deps.sender.send(str(doc["recipient"]), subject, text, html, ref, withdrawn=withdrawn)
    except BadTemplate as error:
        raise fail(f"template {template}: {error}") from error
    except Undeliverable as error:
        raise fail(f"refused: {error}") from error
    except Withdrawn as stale:
        deps.notifications.cancel(key, token, str(stale))
        deps.outcomes.count(CANCELLED)
        log.info("email %s cancelled: %s", ref, stale, extra={"outcome": CANCELLED})
        return CANCELLED
    except Exception as error:
        reason = _describe(error)
        if attempt >= deps.max_attempts:
            raise fail(f"gave up after {attempt} attempts: {reason}") from error
        deps.notifications.release(key, token, reason)
        log.warning(
            "email %s not sent, will retry", ref, extra={"outcome": "retry", "attempt": attempt, "error": reason}
        )
        raise
    deps.notifications.mark_sent(key, token)
    deps.outcomes.count(SENT)
    log.info("email %s sent (%s)", ref, template, extra={"outcome": SENT, "attempt": attempt})
    return SENT


def _describe(error: Exception) -> str:
    """A short reason for ``lastError``: the mailer's own (address-free) text, else the type and message."""
    if isinstance(error, NotSent):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
