"""Typed readers of the JSON Stripe sends: a value of the type the rules need, or ``PermanentError``.

A signature says who sent an event, not that its fields make sense. Each reader takes the raw
value and the field's path (``data.object.amount``) and returns it as its type, or raises
``PermanentError("data.object.amount: expected an integer, got str")``: the message names the
field, and the worker fails the event at once instead of retrying what can never work. Nothing
here is lenient the way Python's helpers are: ``bool`` is not an integer, ``"79900"`` is not an
amount, ids are matched with ``re.fullmatch`` against ASCII classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from domain.errors import PermanentError
from domain.money import MAXIMUM

T = TypeVar("T")
Reader = Callable[[object, str], T]

#: Stripe's times: Unix seconds from 2001-09-09 (before Stripe, and Stripe's own example objects
#: use 2009 dates) to 2100-01-01; anything else is nonsense that ``datetime`` may not even hold.
EARLIEST = 1_000_000_000
LATEST = 4_102_444_800

#: A Stripe id: lower-case prefix, underscore, then ASCII letters, digits and underscores.
STRIPE_ID = re.compile(r"([a-z]{1,10})_[A-Za-z0-9_]{1,250}")
#: A Stripe event type: ``payment_intent.succeeded``, ``charge.dispute.created``, …
EVENT_TYPE = re.compile(r"[a-z0-9_]{1,64}(\.[a-z0-9_]{1,64}){0,6}")
#: A status or other enum word (``succeeded``, ``needs_response``): Stripe may add values, never shapes.
WORD = re.compile(r"[a-z0-9_]{1,64}")
CURRENCY = re.compile(r"[A-Za-z]{3}")
#: Longest free text kept from Stripe (a decline message, a failure reason).
TEXT_MAX = 5_000


def _got(value: object) -> str:
    return type(value).__name__


def integer(value: object, path: str, low: int, high: int) -> int:
    """A JSON integer in ``[low, high]``: not a bool, a float or a numeric string."""
    if type(value) is not int:
        raise PermanentError(f"{path}: expected an integer, got {_got(value)}")
    if not low <= value <= high:
        raise PermanentError(f"{path}: {value} is out of range ({low}..{high})")
    return value


def amount(value: object, path: str) -> int:
    """An amount in minor units: 0 to Stripe's eight digits."""
    return integer(value, path, 0, MAXIMUM)


def timestamp(value: object, path: str) -> int:
    """A Stripe time in Unix seconds, within ``EARLIEST..LATEST``."""
    return integer(value, path, EARLIEST, LATEST)


def stripe_id(value: object, path: str, *prefixes: str) -> str:
    """A Stripe id with one of ``prefixes`` (``pi``, ``re``), or any prefix when none is given."""
    match = STRIPE_ID.fullmatch(value) if isinstance(value, str) else None
    if match is None or (prefixes and match.group(1) not in prefixes):
        shapes = ", ".join(f"{p}_…" for p in prefixes) or "prefix_…"
        raise PermanentError(f"{path}: expected a Stripe id ({shapes}), got {shown(value)}")
    return match.group(0)


def id_reader(*prefixes: str) -> Reader[str]:
    """``stripe_id`` with its prefixes bound, for ``field``."""
    return lambda value, path: stripe_id(value, path, *prefixes)


def event_type(value: object, path: str) -> str:
    if not isinstance(value, str) or not EVENT_TYPE.fullmatch(value):
        raise PermanentError(f"{path}: expected a Stripe event type, got {shown(value)}")
    return value


def word(value: object, path: str) -> str:
    """An enum value such as a status: lower-case ASCII letters, digits and ``_``."""
    if not isinstance(value, str) or not WORD.fullmatch(value):
        raise PermanentError(f"{path}: expected a status word, got {shown(value)}")
    return value


def currency(value: object, path: str) -> str:
    """A three-letter ISO currency code, upper-cased (Stripe sends it lower-case)."""
    if not isinstance(value, str) or not CURRENCY.fullmatch(value):
        raise PermanentError(f"{path}: expected a three-letter currency code, got {shown(value)}")
    return value.upper()


def text(value: object, path: str) -> str:
    """Free text of at most ``TEXT_MAX`` characters."""
    if not isinstance(value, str):
        raise PermanentError(f"{path}: expected text, got {_got(value)}")
    if len(value) > TEXT_MAX:
        raise PermanentError(f"{path}: text longer than {TEXT_MAX} characters")
    return value


def string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PermanentError(f"{path}: expected a string, got {_got(value)}")
    return value


def mapping(value: object, path: str) -> Mapping[str, Any]:
    """A JSON object."""
    if not isinstance(value, Mapping):
        raise PermanentError(f"{path}: expected an object, got {_got(value)}")
    return value


def metadata(value: object, path: str) -> Mapping[str, str]:
    """Stripe metadata: an object whose values are all strings."""
    found = mapping(value, path)
    for key, item in found.items():
        string(item, f"{path}.{key}")
    return found


def listing(value: object, path: str) -> list[Mapping[str, Any]]:
    """A Stripe list object (``{"object": "list", "data": [...]}``): its ``data``, each an object."""
    items = mapping(value, path).get("data")
    if not isinstance(items, list):
        raise PermanentError(f"{path}.data: expected a list, got {_got(items)}")
    return [mapping(item, f"{path}.data[{i}]") for i, item in enumerate(items)]


def field(obj: Mapping[str, Any], key: str, path: str, read: Reader[T], *, nullable: bool = False) -> T | None:
    """``obj[key]`` through ``read``; None when the key is absent, or null where Stripe allows null."""
    if key not in obj or (nullable and obj[key] is None):
        return None
    return read(obj[key], f"{path}.{key}" if path else key)


def required(obj: Mapping[str, Any], key: str, path: str, read: Reader[T]) -> T:
    """``obj[key]`` through ``read``; an absent key is read as null, so its message names the field."""
    return read(obj.get(key), f"{path}.{key}" if path else key)


def shown(value: object) -> str:
    """A short, printable token for an error message: the type, and a string's repr when short."""
    if isinstance(value, str) and len(value) <= 40:
        return ascii(value)
    return _got(value)
