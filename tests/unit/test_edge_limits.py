"""The ingress's edge limits: their settings, the uvicorn internals its protocol needs, the refund reason rule."""

from __future__ import annotations

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapters.settings import ConfigError, load_settings
from domain.errors import RequestRefused
from domain.refunds import check_reason
from ingress.server import EdgeLimits, GuardedHttpToolsProtocol, check_uvicorn_internals, protocol_class

BASE = {"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc", "JWT_SECRET": "s3cret"}


def test_the_edge_limits_defaults() -> None:
    """16 KiB of head, 10 s for it and 30 s for the body; five refund requests a user, three a payment."""
    s = load_settings(BASE, dotenv=None)
    assert (s.max_header_bytes, s.header_timeout_seconds, s.body_timeout_seconds) == (16_384, 10, 30)
    assert (s.refund_rate_limit_per_minute, s.refund_payment_rate_limit_per_minute) == (5, 3)
    assert EdgeLimits.of(s) == EdgeLimits(16_384, 10, 30)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_HEADER_BYTES", "512"),
        ("HEADER_TIMEOUT_SECONDS", "0"),
        ("BODY_TIMEOUT_SECONDS", "-1"),
        ("REFUND_RATE_LIMIT_PER_MINUTE", "0"),
        ("REFUND_PAYMENT_RATE_LIMIT_PER_MINUTE", "x"),
    ],
)
def test_an_edge_limit_that_would_disable_itself_is_refused(name: str, value: str) -> None:
    """No cap under 1 KiB, no zero timeout, no zero rate: start-up stops naming the variable."""
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: value}, dotenv=None)


def test_the_protocol_is_bound_to_its_limits() -> None:
    """``protocol_class`` checks uvicorn, then gives a subclass carrying the limits."""
    limits = EdgeLimits(2048, 1, 2)
    bound = protocol_class(limits)
    assert issubclass(bound, GuardedHttpToolsProtocol) and bound.limits == limits
    assert GuardedHttpToolsProtocol.limits == EdgeLimits()


def test_a_missing_uvicorn_internal_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``HttpToolsProtocol.on_header`` the check names it."""
    check_uvicorn_internals()
    monkeypatch.delattr(HttpToolsProtocol, "on_header", raising=True)
    with pytest.raises(RuntimeError, match=r"uvicorn internals changed: HttpToolsProtocol\.on_header"):
        protocol_class(EdgeLimits())


def test_only_a_customer_is_refused_the_fraudulent_reason() -> None:
    """``fraudulent`` from a customer is a 422 on ``reason``; other reasons, or other requesters, pass."""
    with pytest.raises(RequestRefused) as refused:
        check_reason("fraudulent", customer=True)
    assert (refused.value.code, refused.value.field) == ("validation_error", "reason")
    for reason in (None, "duplicate", "requested_by_customer", "Fraudulent, I think"):
        check_reason(reason, customer=True)
    check_reason("fraudulent", customer=False)
