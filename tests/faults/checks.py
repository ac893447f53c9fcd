"""When a run has settled, and what it left behind: lost, duplicated and wrong effects.

Settled means nothing is left in flight: every event delivered is final in the inbox, the
Redis queues (delayed and in-flight messages included) are empty, no notification of the run
is waiting to be sent, no paid payment is waiting for its activation and no refund request for
Stripe's answer. Only then are the
effects counted, so anything missing is lost rather than late, and nothing can still arrive.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from dramatiq import Message

from devstack.stack import HEARTBEATS
from domain.payments import COMPLETED, PAID, PARTIALLY_REFUNDED, REFUNDED, status_of_intent
from tests.faults.payments import DECLINED, REFUND, RETRIED, LocalStripe, Payment

#: A delayed message still waiting this long after it fell due is stranded: no consumer will
#: promote it (what a dead delay-queue consumer thread once left, ``test_stranded_retries``).
STRANDED_AFTER = 15.0
STRANDED = "retries stranded past their time in a delay queue"
FINAL = ("processed", "ignored", "failed")
#: A claim whose attempt died (its worker killed, or MongoDB gone before ``mark_sent``) is taken
#: back by the message's redelivery: one still ``sending`` once the run settled was left behind.
STUCK_UNSENT = "emails left claimed by a dead attempt, not sent"
STUCK_SENT = "emails delivered but left claimed (sent again when the lease ends)"


def worker_ids(redis_client: Any) -> list[str]:
    """The broker ids of the worker processes with a heartbeat in Redis."""
    return [w.decode() for w in redis_client.zrange(HEARTBEATS, 0, -1)]


def queued(redis_client: Any) -> tuple[int, int]:
    """Messages queued, delayed or in flight on every queue but the dead letters, and how many are stranded.

    Dramatiq keeps each message in its queue's ``.msgs`` hash from enqueue to acknowledgement.
    """
    total = stranded = 0
    overdue = (time.time() - STRANDED_AFTER) * 1000
    for key in redis_client.scan_iter("dramatiq:*.msgs"):
        name = key.decode()
        if name.endswith(".XQ.msgs"):
            continue
        total += int(redis_client.hlen(key))
        if name.endswith(".DQ.msgs"):
            etas = (Message.decode(raw).options.get("eta") for raw in redis_client.hvals(key))
            stranded += sum(1 for eta in etas if eta is not None and eta < overdue)
    return total, stranded


#: How close to a worker's kill the first copy of an email re-sent by the redelivery must have
#: reached the SMTP server: the kill fell between the server taking it and its ``sent`` mark,
#: a window SMTP cannot close (no transaction); the copy carries the same Message-ID.
HANDOVER = timedelta(seconds=1)

#: A decline's email may reach the SMTP server this long after its payment completed and still
#: have been true when sent: the worker reads the payment just before sending, without a lock.
IN_FLIGHT_SEND = timedelta(seconds=1)


@dataclass(frozen=True)
class Mail:
    message_id: str
    recipients: str
    arrived: datetime


class Mailbox:
    """The SMTP sink's folder, each ``.eml`` read once (the sink never changes a file after writing it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._read: dict[str, Mail] = {}
        self._parser = BytesHeaderParser()

    def mails(self) -> list[Mail]:
        """Every message received so far."""
        for path in sorted(self.directory.glob("*.eml")):
            if path.name not in self._read:
                headers = self._parser.parsebytes(path.read_bytes())
                stamp = datetime.strptime(path.name.split("-")[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
                recipients = str(headers.get("X-Sink-Envelope-To", ""))
                self._read[path.name] = Mail(str(headers.get("Message-ID", "")).strip(), recipients, stamp)
        return list(self._read.values())


@dataclass
class Tally:
    """Effects counted after a run, by kind."""

    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def outstanding(db: Any, redis_client: Any, payments: list[Payment], event_ids: set[str]) -> str:
    """What is still in flight for the run, in words; empty once it has settled.

    A notification left ``sending`` once every queue is empty is held by a claim whose attempt
    died: nothing will touch it before the claim's lease ends, so it is counted, not waited for;
    so are stranded retries, which nothing will touch before the worker restarts.
    """
    intents = [p.intent_id for p in payments]
    left = []
    final = db.stripe_events.count_documents({"_id": {"$in": sorted(event_ids)}, "status": {"$in": list(FINAL)}})
    if final < len(event_ids):
        left.append(f"{len(event_ids) - final} events not final")
    total, stranded = queued(redis_client)
    if total - stranded:
        left.append(f"{total - stranded} messages queued")
    pending = db.notifications.count_documents({"context.payment_id": {"$in": intents}, "status": "pending"})
    if pending:
        left.append(f"{pending} emails pending")
    waiting = {"paymentId": {"$in": intents}, "status": COMPLETED, "activatedAt": None, "reviewRequired": None}
    unactivated = db.payments.count_documents(waiting)
    if unactivated:
        left.append(f"{unactivated} paid payments not activated")
    asked = {"paymentId": {"$in": intents}, "refunds": {"$elemMatch": {"status": "pending"}}}
    refunding = db.payments.count_documents(asked)
    if refunding:
        left.append(f"{refunding} refunds not recorded")
    return ", ".join(left)


def settle(
    db: Any, redis_client: Any, payments: list[Payment], event_ids: set[str], timeout: float
) -> tuple[float | None, str]:
    """Seconds until the run settled (None if it had not after ``timeout``), and what was left then."""
    started = time.monotonic()
    while left := outstanding(db, redis_client, payments, event_ids):
        if time.monotonic() - started > timeout:
            return None, left
        time.sleep(0.25)
    return time.monotonic() - started, ""


@dataclass
class Observed:
    """What the run left, read once it settled."""

    inbox: dict[str, Any]
    docs: dict[str, Any]
    enrollments: dict[Any, list[Any]]
    notices: dict[str, list[Any]]
    copies: Counter[str]
    arrived: dict[str, datetime]
    arrivals: dict[str, list[datetime]]


def observe(db: Any, mailbox: Mailbox, payments: list[Payment], event_ids: set[str]) -> Observed:
    intents = [p.intent_id for p in payments]
    enrollments: dict[Any, list[Any]] = {}
    for enrollment in db.enrollments.find({"customerId": {"$in": [p.customer_id for p in payments]}}):
        enrollments.setdefault(enrollment["customerId"], []).append(enrollment)
    notices: dict[str, list[Any]] = {}
    for notice in db.notifications.find({"context.payment_id": {"$in": intents}}):
        notices.setdefault(notice["context"]["payment_id"], []).append(notice)
    addresses = {p.customer_email for p in payments} | {p.specialist_email for p in payments}
    mails = [m for m in mailbox.mails() if m.recipients in addresses]
    return Observed(
        inbox={d["_id"]: d.get("status") for d in db.stripe_events.find({"_id": {"$in": sorted(event_ids)}})},
        docs={d["paymentId"]: d for d in db.payments.find({"paymentId": {"$in": intents}})},
        enrollments=enrollments,
        notices=notices,
        copies=Counter(m.message_id for m in mails),
        arrived={m.message_id: m.arrived for m in mails},
        arrivals=_arrivals(mails),
    )


def _arrivals(mails: list[Mail]) -> dict[str, list[datetime]]:
    found: dict[str, list[datetime]] = {}
    for mail in mails:
        found.setdefault(mail.message_id, []).append(mail.arrived)
    return {message_id: sorted(times) for message_id, times in found.items()}


def resent_across_a_kill(arrivals: dict[str, list[datetime]], kills: list[datetime]) -> set[str]:
    """Emails sent exactly twice, the first copy within ``HANDOVER`` of a worker's kill, the second after it."""
    return {
        message_id
        for message_id, times in arrivals.items()
        if len(times) == 2 and any(abs(times[0] - kill) <= HANDOVER and times[1] > kill for kill in kills)
    }


def count_effects(
    db: Any,
    redis_client: Any,
    stripe: LocalStripe,
    mailbox: Mailbox,
    payments: list[Payment],
    event_ids: set[str],
    kills: list[datetime],
) -> Tally:
    """Compare every payment with Stripe's view, and count activations, enrollments and emails.

    An email sent twice because the worker was killed in its hand-over (``resent_across_a_kill``)
    is named in the notes, not counted as duplicated: at least once is all SMTP allows there.
    """
    seen = observe(db, mailbox, payments, event_ids)
    tally = Tally()
    tally.lost[STRANDED] = queued(redis_client)[1]
    tally.lost["events not processed"] = sum(1 for i in event_ids if seen.inbox.get(i) != "processed")
    resent = resent_across_a_kill(seen.arrivals, kills)
    tally.duplicated["emails sent twice"] = sum(n - 1 for mid, n in seen.copies.items() if mid not in resent)
    if resent:
        tally.notes.append(
            f"{len(resent)} emails sent again by the redelivery of a worker killed while the SMTP server was"
            " taking them (at least once: SMTP has no transaction; both copies carry one Message-ID)"
        )
    known = {n["messageId"] for ns in seen.notices.values() for n in ns}
    tally.wrong["emails nobody asked for"] = sum(n for mid, n in seen.copies.items() if mid not in known)
    lateness: list[float] = []
    for payment in payments:
        truth = status_of_intent(stripe.intent(payment.intent_id))
        refunds = stripe.refunds(payment.intent_id) if truth == COMPLETED else []
        _refund_effects(tally, payment, seen.docs.get(payment.intent_id), refunds)
        refunded = sum(r["amount"] for r in refunds if r.get("status") == "succeeded")
        if refunded:
            truth = REFUNDED if refunded >= int(payment.document["amount"]) else PARTIALLY_REFUNDED
        doc = seen.docs.get(payment.intent_id)
        if doc is None or doc["status"] != truth:
            tally.lost["payments not in Stripe's state"] += 1
            continue
        _payment_effects(tally, seen, payment, doc)
        _email_effects(tally, seen, payment, doc, lateness)
    tally.notes.append(_declines(seen, payments, lateness))
    tally.notes.append(f"{sum(p.story == REFUND for p in payments)} refunds asked for")
    return tally


def _refund_effects(tally: Tally, payment: Payment, doc: Any, refunds: list[dict[str, Any]]) -> None:
    """One Stripe refund for a payment whose customer asked for it, none for another; each recorded once."""
    asked = payment.story == REFUND
    tally.lost["refunds never issued"] += asked and not refunds
    tally.duplicated["refunds issued twice"] += max(0, len(refunds) - 1)
    tally.wrong["refunds nobody asked for"] += 0 if asked else len(refunds)
    recorded = Counter(r.get("id") for r in (doc or {}).get("refunds", []) if r.get("id"))
    tally.duplicated["refunds recorded twice"] += sum(n - 1 for n in recorded.values())
    tally.lost["refunds not recorded"] += sum(1 for r in refunds if r["id"] not in recorded)


def _payment_effects(tally: Tally, seen: Observed, payment: Payment, doc: Any) -> None:
    """One activation of one enrollment for a paid payment (cancelled once refunded), none for another."""
    mine = seen.enrollments.get(payment.customer_id, [])
    tally.duplicated["extra enrollments"] += max(0, len(mine) - 1)
    history = [h["status"] for h in doc.get("statusHistory", [])]
    tally.duplicated["payments completed twice"] += max(0, history.count(COMPLETED) - 1)
    tally.wrong["payments flagged for review"] += bool(doc.get("reviewRequired"))
    if doc["status"] in PAID:
        state = "active" if doc["status"] == COMPLETED else "cancelled"
        activated = any(e.get("paymentId") == payment.record_id and e.get("status") == state for e in mine)
        tally.lost["paid payments not activated"] += not (doc.get("activatedAt") and activated)
    else:
        tally.wrong["enrollments of unpaid payments"] += len(mine)


def _email_effects(tally: Tally, seen: Observed, payment: Payment, doc: Any, lateness: list[float]) -> None:
    """The emails the payment's story calls for, each sent once; a decline's email never after the success."""
    expected = []
    if doc["status"] in PAID:
        expected = [("enrollment_confirmation", payment.customer_email)]
        expected.append(("specialist_new_enrollment", payment.specialist_email))
    if doc["status"] == REFUNDED:
        expected.append(("refund_confirmation", payment.customer_email))
        expected.append(("refund_notice", payment.specialist_email))
    if payment.story == DECLINED:
        expected.append(("payment_failed", payment.customer_email))
    notices = seen.notices.get(payment.intent_id, [])
    for template, recipient in expected:
        mine = [n for n in notices if (n["template"], n["recipient"]) == (template, recipient)]
        delivered = any(n["status"] == "sent" and seen.copies[n["messageId"]] for n in mine)
        stuck = any(n["status"] == "sending" for n in mine)
        tally.lost["emails never sent"] += not delivered and not stuck
    for notice in notices:
        copies = seen.copies[notice["messageId"]]
        if notice["status"] == "sending":
            tally.duplicated[STUCK_SENT] += bool(copies)
            tally.lost[STUCK_UNSENT] += not copies
        elif copies and notice["status"] != "sent":
            tally.wrong[f"emails sent though {notice['status']}"] += 1
        if notice["template"] == "payment_failed" and doc["status"] in PAID and copies:
            completed_at = next(h["at"] for h in doc["statusHistory"] if h["status"] == COMPLETED)
            lateness.append((seen.arrived[notice["messageId"]] - completed_at).total_seconds())
            late = seen.arrived[notice["messageId"]] > completed_at + IN_FLIGHT_SEND
            tally.wrong["decline emails sent after the payment completed"] += late


def _declines(seen: Observed, payments: list[Payment], lateness: list[float]) -> str:
    """How the declined-then-paid payments went: which ran the decline first, what became of its email."""
    retried = [p for p in payments if p.story == RETRIED]
    first = 0
    for payment in retried:
        history = [h["status"] for h in seen.docs.get(payment.intent_id, {}).get("statusHistory", [])]
        first += "failed" in history and COMPLETED in history and history.index("failed") < history.index(COMPLETED)
    emails = [n for p in retried for n in seen.notices.get(p.intent_id, []) if n["template"] == "payment_failed"]
    arrivals = f" (arrived {', '.join(f'{s:+.3f}' for s in sorted(lateness))} s from the success)" if lateness else ""
    return (
        f"declined-then-paid: {first} of {len(retried)} ran the decline first; its email"
        f" cancelled {sum(n['status'] == 'cancelled' for n in emails)},"
        f" sent while true {sum(n['status'] == 'sent' for n in emails)}{arrivals}"
    )
