"""Which emails stop being true: one written when something happened may be wrong by the time it is sent.

A ``payment_failed`` email is queued when a decline is processed; events arrive in any order,
so by the time it is sent the same payment may have been paid. It must not go out then.
Every send of one notification carries the same ``Message-ID``, derived from its dedupe key.
"""

from __future__ import annotations

import hashlib

from domain.payments import PAID

#: Template → the payment statuses in which that email is no longer true.
OBSOLETE_WHEN: dict[str, frozenset[str]] = {
    "payment_failed": PAID,
}


def obsolete(template: str, payment_status: str) -> bool:
    """True when an email of ``template`` must not be sent for a payment now in ``payment_status``."""
    return payment_status in OBSOLETE_WHEN.get(template, frozenset())


def watches_payment(template: str) -> bool:
    """True when whether ``template`` may be sent depends on its payment's status at send time."""
    return template in OBSOLETE_WHEN


def message_id_for(key: str) -> str:
    """The stable ``Message-ID`` of a notification: a resend after a crash carries the same one."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@payments-pipeline>"
