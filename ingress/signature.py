"""Stripe webhook signatures, checked on the raw bytes (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Sequence

import stripe

#: Seconds a signed timestamp stays acceptable (Stripe's own default for its libraries).
TOLERANCE = 300


def verify(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` signs ``body`` with any of ``secrets`` within the tolerance.

    ``verify_header`` compares in constant time and checks the timestamp only when given a
    tolerance; it raises ``UnicodeDecodeError`` for a body that is not UTF-8, which is a bad
    signature, never a server error. Every secret is tried, so rotation needs no downtime.
    """
    if not header:
        return False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance=TOLERANCE)
            return True
        except stripe.SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            return False
    return False
