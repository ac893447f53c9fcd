"""Prices in major units become Stripe amounts in minor units, per currency (docs/api.md#conventions)."""

from __future__ import annotations

import doctest

import pytest

from domain import money
from domain.money import MoneyError, check_chargeable, to_minor


def test_the_module_examples_hold() -> None:
    """The docstring examples of domain.money are true."""
    assert doctest.testmod(money).failed == 0


@pytest.mark.parametrize(
    ("price", "currency", "amount"),
    [(499, "INR", 49900), ("19.99", "usd", 1999), (0.1 + 0.2, "EUR", None), (500, "JPY", 500), ("1.5", "KWD", 1500)],
)
def test_prices_convert_exactly(price: object, currency: str, amount: int | None) -> None:
    """Two decimals for most currencies, none for zero-decimal, three for three-decimal; no float drift."""
    if amount is None:
        with pytest.raises(MoneyError, match="decimals"):
            to_minor(price, currency)
    else:
        assert to_minor(price, currency) == amount


@pytest.mark.parametrize("price", [None, True, "abc", float("nan"), {"$gt": 0}])
def test_non_numbers_are_refused(price: object) -> None:
    """A price that is not a number is a MoneyError, never an amount."""
    with pytest.raises(MoneyError):
        to_minor(price, "INR")


def test_stripe_minimums_and_three_decimal_rule() -> None:
    """Below Stripe's minimum, or a three-decimal amount not ending in 0, cannot be charged."""
    with pytest.raises(MoneyError, match="minimum"):
        check_chargeable(49, "USD")
    with pytest.raises(MoneyError, match="end in 0"):
        check_chargeable(1505, "KWD")
    check_chargeable(50, "INR")


@pytest.mark.parametrize("price", [1e300, 2**62, "sNaN", "1e999999999", "Infinity", 1_000_000])
def test_prices_stripe_cannot_charge_are_refused_with_a_reason(price: object) -> None:
    """Beyond Stripe's eight digits, not finite, or beyond Decimal's range: MoneyError, never another exception."""
    with pytest.raises(MoneyError):
        to_minor(price, "USD")
