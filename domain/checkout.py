"""The rules of create-intent: what a service costs, and which requests are refused before Stripe is called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import RequestRefused
from domain.money import MoneyError, check_chargeable, to_minor


@dataclass(frozen=True)
class Service:
    """A row of the MERN app's ``services`` (read only)."""

    id: Any
    name: str
    type: str
    price: Any
    currency: str
    specialist_id: Any
    active: bool


def price(service: Service) -> tuple[int, str]:
    """The service's price in minor units and its currency, or a 422 naming the problem."""
    currency = str(service.currency or "").upper()
    if len(currency) != 3:
        raise RequestRefused("validation_error", f"service has no valid currency ({service.currency!r})")
    try:
        amount = to_minor(service.price, currency)
        check_chargeable(amount, currency)
    except MoneyError as error:
        raise RequestRefused("validation_error", str(error), "amount") from None
    return amount, currency


@dataclass(frozen=True)
class Quote:
    """What create-intent charges: the service and its price in minor units."""

    service: Service
    amount: int
    currency: str


def quote(service: Service | None, service_type: str, client_amount: int | None) -> Quote:
    """What to charge for ``service``, or the refusal the caller gets.

    The price always comes from the catalog; a client ``amount`` that differs is refused, never used.
    """
    if service is None or not service.active:
        raise RequestRefused("not_found", "service not found", "serviceId")
    if service_type != service.type:
        raise RequestRefused("validation_error", f"service is a {service.type}, not a {service_type}", "serviceType")
    amount, currency = price(service)
    if client_amount is not None and client_amount != amount:
        raise RequestRefused("amount_mismatch", f"the price is {amount} {currency} in minor units", "amount")
    return Quote(service, amount, currency)
