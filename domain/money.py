"""Money in integer minor units, and Stripe's rules for turning a price into an amount.

Prices in the MERN app's ``services`` are in major units (``499`` rupees); Stripe wants the
smallest unit (``49900`` paise), except for zero-decimal currencies (``JPY 500`` is ``500``) and
three-decimal ones (``KWD 1.5`` is ``1500``, and Stripe requires it to end in 0).
"""

from __future__ import annotations

from decimal import Decimal, DecimalException

#: Stripe's zero-decimal currencies.
ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"],
)
#: Stripe's three-decimal currencies.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

#: Stripe's minimum charge per settlement currency, in minor units; others default to 50.
MINIMUM = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50, "CZK": 1500,
    "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50, "JPY": 50, "MXN": 1000,
    "MYR": 200, "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200, "SEK": 300, "SGD": 50, "THB": 1000,
}  # fmt: skip


#: Stripe's largest amount: eight digits in minor units (999,999.99 for two-decimal currencies).
MAXIMUM = 99_999_999


class MoneyError(ValueError):
    """A price that cannot be charged; the message says why, for a 422."""


def exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def to_minor(price: object, currency: str) -> int:
    """``price`` in major units as an exact integer amount in minor units.

    >>> to_minor(499, "INR"), to_minor("19.99", "usd"), to_minor(500, "JPY")
    (49900, 1999, 500)
    """
    if isinstance(price, bool) or not isinstance(price, int | float | str | Decimal):
        raise MoneyError(f"price {price!r} is not a number")
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into the amount.
        value = Decimal(str(price))
        if not value.is_finite():
            raise MoneyError(f"price {price!r} is not a finite number")
        minor = value.scaleb(exponent(currency))
        if minor != minor.to_integral_value():
            raise MoneyError(f"price {price} has more decimals than {currency.upper()} allows")
        if abs(minor) > MAXIMUM:
            raise MoneyError(f"price {price} is above Stripe's maximum of {MAXIMUM} minor units")
        return int(minor)
    except DecimalException:  # "sNaN", an exponent too large for the context, …
        raise MoneyError(f"price {price!r} is not a number Stripe can charge") from None


def check_chargeable(amount: int, currency: str) -> None:
    """Raise ``MoneyError`` for an amount Stripe would refuse."""
    code = currency.upper()
    minimum = MINIMUM.get(code, 50)
    if amount < minimum:
        raise MoneyError(f"{amount} is below Stripe's minimum charge of {minimum} for {code}")
    if code in THREE_DECIMAL and amount % 10:
        raise MoneyError(f"{code} amounts must end in 0 for Stripe")


def major(amount: int, currency: str) -> str:
    """An amount in major units with the currency's own decimals and no grouping (exports, spreadsheets).

    >>> major(49900, "INR"), major(500, "jpy"), major(1234, "KWD")
    ('499.00', '500', '1.234')
    """
    places = exponent(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


def display(amount: int, currency: str) -> str:
    """An amount for people: ``INR 499.00``, ``JPY 500``.

    >>> display(49900, "inr"), display(500, "JPY")
    ('INR 499.00', 'JPY 500')
    """
    places = exponent(currency)
    value = Decimal(amount).scaleb(-places)
    return f"{currency.upper()} {value:,.{places}f}"
