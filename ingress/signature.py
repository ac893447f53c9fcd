"""Stripe webhook signatures, checked on the raw bytes (docs/architecture.md#security)."""

from __future__ import annotations

import functools
import hmac
import re
import time
from collections.abc import Sequence

#: Seconds a signed timestamp stays acceptable, in the past and in the future (Stripe's own default).
TOLERANCE = 300
#: Longest header accepted (a few ``v1=`` signatures during rotation fit many times over).
MAX_HEADER = 4096
TIMESTAMP = re.compile(r"[0-9]{1,12}")
#: The one scheme Stripe signs live webhooks with (HMAC-SHA256); ``v0`` is its test scheme.
SCHEME = "v1="


def timestamp(header: str) -> int | None:
    """The one ``t=`` of a ``Stripe-Signature`` header, ASCII digits only; None if absent, repeated or odd.

    Stripe's library reads it with ``int()``, which also takes ``"1_700_000_000"``, spaces and
    non-ASCII digits, and checks only that it is not too old.
    """
    return _timestamp(header.split(","))


def _timestamp(items: list[str]) -> int | None:
    """``timestamp`` of a header already split at its commas."""
    values = [item[2:] for item in items if item.startswith("t=")]
    if len(values) != 1 or not TIMESTAMP.fullmatch(values[0]):
        return None
    return int(values[0])


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with any of ``secrets`` within ``TOLERANCE`` of ``now``.

    Stripe's scheme (what ``stripe.WebhookSignature.verify_header`` checks, tested against it in
    tests/unit/test_signature.py): ``v1`` is the hex HMAC-SHA256, under the secret, of
    ``"{t}.{body}"``; the header may carry several ``v1`` (Stripe's own rotation) and any may
    match, compared in constant time. Done here in one pass over the header, where the library
    parsed it again, decoded the body to text and encoded it back, for every secret.

    The header must be printable ASCII (``hmac.compare_digest`` raises on other strings) with one
    ``t=`` no more than ``TOLERANCE`` seconds away either way: Stripe's library refuses only old
    timestamps, so a signature for the far future would otherwise stay valid until then. A body
    that is not UTF-8 was never signed by Stripe (it signs text): a bad signature, never a server
    error. Every secret is tried, so rotation needs no downtime.
    """
    if not header or len(header) > MAX_HEADER or not (header.isascii() and header.isprintable()):
        return False
    items = header.split(",")
    signed_at = _timestamp(items)
    current = time.time() if now is None else now
    if signed_at is None or abs(current - signed_at) > TOLERANCE:
        return False
    if "t" in items or "v1" in items:  # keys without a value: Stripe's library failed on them (a 500)
        return False
    given = [item[len(SCHEME) :] for item in items if item.startswith(SCHEME)]
    if not given:
        return False
    if not body.isascii():  # ASCII is UTF-8: only other bodies need decoding to tell
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    prefix = b"%d." % signed_at
    for secret in secrets:
        if not secret.strip():  # Stripe's library refuses a blank secret rather than sign with it
            continue
        mac = _keyed(secret).copy()
        mac.update(prefix)
        mac.update(body)  # the body is hashed where it lies, not copied behind the prefix
        expected = mac.hexdigest()
        for signature in given:
            if hmac.compare_digest(expected, signature):
                return True
    return False


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """HMAC-SHA256 keyed with ``secret``, for ``verify`` to copy: ``hmac.digest`` has OpenSSL look the
    algorithm up and key it anew for every delivery, which a copy skips
    (docs/performance.md#figures-from-code-comments)."""
    return hmac.new(secret.encode(), digestmod="sha256")
