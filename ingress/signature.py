"""Stripe webhook signatures, checked on the raw bytes (DESIGN §5)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

# Bound once: ``stripe.X`` goes through the package's lazy ``__getattr__`` (an import) on every access.
from stripe import SignatureVerificationError, WebhookSignature

#: Seconds a signed timestamp stays acceptable, in the past and in the future (Stripe's own default).
TOLERANCE = 300
#: Longest header accepted (a few ``v1=`` signatures during rotation fit many times over).
MAX_HEADER = 4096
TIMESTAMP = re.compile(r"[0-9]{1,12}")


def timestamp(header: str) -> int | None:
    """The one ``t=`` of a ``Stripe-Signature`` header, ASCII digits only; None if absent, repeated or odd.

    Stripe's library reads it with ``int()``, which also takes ``"1_700_000_000"``, spaces and
    non-ASCII digits, and checks only that it is not too old.
    """
    values = [item[2:] for item in header.split(",") if item.startswith("t=")]
    if len(values) != 1 or not TIMESTAMP.fullmatch(values[0]):
        return None
    return int(values[0])


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with any of ``secrets`` within ``TOLERANCE`` of ``now``.

    The header must be printable ASCII (``hmac.compare_digest`` raises on other strings) with one
    ``t=`` no more than ``TOLERANCE`` seconds away either way: Stripe's library refuses only old
    timestamps, so a signature for the far future would otherwise stay valid until then.
    ``verify_header`` compares in constant time; it raises ``UnicodeDecodeError`` for a body that
    is not UTF-8, which is a bad signature, never a server error. Every secret is tried, so
    rotation needs no downtime.
    """
    if not header or len(header) > MAX_HEADER or not (header.isascii() and header.isprintable()):
        return False
    signed_at = timestamp(header)
    current = time.time() if now is None else now
    if signed_at is None or abs(current - signed_at) > TOLERANCE:
        return False
    for secret in secrets:
        try:
            WebhookSignature.verify_header(body, header, secret, tolerance=TOLERANCE)
            return True
        except SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            return False
    return False
