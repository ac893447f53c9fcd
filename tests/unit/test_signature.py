"""Webhook signatures are checked on the raw bytes against every secret with a 300 s tolerance."""

from __future__ import annotations

import time

from devstack.events import sign
from ingress.signature import verify

BODY = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'


def test_a_body_signed_with_any_configured_secret_verifies() -> None:
    """Rotation: the old and the new secret are both accepted."""
    assert verify(BODY, sign(BODY, "whsec_new"), ["whsec_old", "whsec_new"])


def test_a_forged_signature_is_refused() -> None:
    """A body signed with another secret does not verify."""
    assert not verify(BODY, sign(BODY, "whsec_other"), ["whsec_mine"])


def test_a_changed_body_is_refused() -> None:
    """One byte changed after signing breaks the signature."""
    assert not verify(BODY + b" ", sign(BODY, "whsec_mine"), ["whsec_mine"])


def test_a_stale_timestamp_is_refused() -> None:
    """A signature older than five minutes is refused even though the HMAC matches."""
    assert not verify(BODY, sign(BODY, "whsec_mine", int(time.time()) - 301), ["whsec_mine"])


def test_a_missing_header_or_non_utf8_body_is_refused_not_raised() -> None:
    """No header, or a body that is not UTF-8, is a bad signature rather than an error."""
    assert not verify(BODY, None, ["whsec_mine"])
    assert not verify(b"\xff\xfe", sign(b"\xff\xfe", "whsec_mine"), ["whsec_mine"])
