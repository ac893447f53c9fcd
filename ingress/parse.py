"""The one set of parsers for everything a client sends: every route uses these (docs/api.md#conventions).

Each parser takes the raw value (from a JSON body, a path, a query string, a header) and either
returns it as the type the code needs, or raises ``Invalid`` (422 ``validation_error`` naming the
field) or ``Malformed`` (400 ``malformed_json``). Nothing here trusts Python's loose helpers:

- ids are matched with ``re.fullmatch`` against explicit ASCII classes (``re.match`` with ``$``
  accepts a trailing newline; ``\\d`` and ``str.isdigit`` accept ``"²"`` and Arabic digits);
- integers from query strings are ASCII digits only, bounded in length before ``int()`` and
  checked against a range;
- enums are checked against a fixed set;
- JSON bodies are refused when they nest deeper than ``MAX_DEPTH`` before ``json.loads`` sees them
  (no ``RecursionError``), and ``NaN``/``Infinity``, numbers that overflow a float and strings
  holding lone surrogates (which cannot be written back as UTF-8) are refused too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bson import ObjectId

from ingress.errors import ApiError

#: Deepest nesting of arrays and objects a JSON body may have (Stripe's events stay well below).
MAX_DEPTH = 32
#: Largest integer MongoDB stores (int64).
INT64_MAX = 2**63 - 1

OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
#: A Stripe id: lower-case prefix, underscore, then ASCII letters, digits and underscores.
STRIPE_ID = re.compile(r"([a-z]{1,10})_[A-Za-z0-9_]{1,250}")
ASCII_DIGITS = re.compile(r"[0-9]{1,18}")
#: A short name (``serviceType``): printable, no control characters, bounded.
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
#: A Stripe event type: ``payment_intent.succeeded``, ``charge.dispute.created``, …
TEXT = re.compile(r"[^\x00-\x09\x0b-\x1f\x7f]{1,500}")
EVENT_TYPE = re.compile(r"[a-z0-9_]{1,64}(\.[a-z0-9_]{1,64}){0,6}")
#: An opaque page cursor as this API gives them out (URL-safe base64, no padding).
MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|\+00:00)?)?")
CURSOR = re.compile(r"[A-Za-z0-9_-]{1,128}")


class Invalid(ApiError):
    """Parsable input that fails validation: 422 ``validation_error``, naming the field when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(422, "validation_error", message, field)


class Malformed(ApiError):
    """A body that is not JSON: 400 ``malformed_json``."""

    def __init__(self, message: str = "body is not valid JSON") -> None:
        super().__init__(400, "malformed_json", message)


def object_id(value: object, field: str) -> ObjectId:
    """A 24-hex string as an ObjectId; anything else (``{"$gt": ""}``, ``"…\\n"``) is a 422."""
    if not isinstance(value, str) or not OBJECT_ID.fullmatch(value):
        raise Invalid(f"{field} must be a 24-character hex id", field)
    return ObjectId(value)


def stripe_id(value: object, field: str, prefix: str) -> str:
    """A Stripe id with ``prefix`` (``pi``, ``evt``): ASCII letters, digits and ``_`` only."""
    match = STRIPE_ID.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(1) != prefix:
        raise Invalid(f"{field} must be a Stripe id ({prefix}_…)", field)
    assert isinstance(value, str)
    return value


def intent_id(value: object, field: str) -> str:
    """A PaymentIntent id (``pi_…``)."""
    return stripe_id(value, field, "pi")


def name(value: object, field: str) -> str:
    """A short non-empty string without control characters (at most 64 characters)."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise Invalid(f"{field} must be a non-empty string of at most 64 characters", field)
    return value


def text(value: object, field: str) -> str | None:
    """Optional free text (a refund's reason): 1 to 500 characters, no control characters but newlines."""
    if value is None:
        return None
    if not isinstance(value, str) or not TEXT.fullmatch(value):
        raise Invalid(f"{field} must be text of 1 to 500 characters", field)
    return value


def minor_amount(value: object, field: str) -> int | None:
    """An optional amount in minor units from a JSON body: a whole number from 0 to int64's maximum."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise Invalid(f"{field} must be a whole number of minor units", field)
    return value


def query_int(params: Mapping[str, str], field: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in ``[low, high]``: ASCII digits only, ``default`` when absent."""
    raw = params.get(field)
    if raw is None:
        return default
    if not ASCII_DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise Invalid(f"{field} must be a whole number from {low} to {high}", field)
    return int(raw)


def query_moment(params: Mapping[str, str], field: str, *, end: bool = False) -> datetime | None:
    """An optional ISO 8601 date or UTC date-time in the query; a date given as ``end`` means the end of that day."""
    raw = params.get(field)
    if not raw:
        return None
    if not MOMENT.fullmatch(raw):
        raise Invalid(f"{field} must be a date (2026-11-01) or a UTC date-time (2026-11-01T10:00:00Z)", field)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment + timedelta(days=1) if end and len(raw) == 10 else moment
    except (ValueError, OverflowError):
        raise Invalid(f"{field} is not a valid date", field) from None


def query_period(params: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """``from`` and ``to`` (a date as ``to`` includes that day), either may be absent; ``from`` must come first."""
    start, end = query_moment(params, "from"), query_moment(params, "to", end=True)
    if start and end and start >= end:
        raise Invalid("from must be before to", "from")
    return start, end


def choice(params: Mapping[str, str], field: str, allowed: Collection[str]) -> str | None:
    """An optional query parameter that must be one of ``allowed`` (an empty value counts as absent)."""
    raw = params.get(field)
    if not raw:
        return None
    if raw not in allowed:
        raise Invalid(f"{field} must be one of {', '.join(sorted(allowed))}", field)
    return raw


def cursor(params: Mapping[str, str], field: str = "cursor") -> str | None:
    """An optional page cursor: URL-safe base64 of at most 128 characters (its content is checked on use)."""
    raw = params.get(field)
    if not raw:
        return None
    if not CURSOR.fullmatch(raw):
        raise Invalid("cursor is not one this API gave out", field)
    return raw


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: ``bytes.translate`` arguments that keep only brackets, with ``{}`` turned into ``[]``.
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def nesting_depth(raw: bytes, limit: int | None = None) -> int:
    """How deep arrays and objects nest in ``raw``, counted without parsing; stops past ``limit``.

    Strings are dropped and the brackets kept (objects' as ``[]``); then each pass peels one level
    by removing every innermost ``[]`` (``bytes.replace`` matches in the text as it was before the
    pass). All at C speed, no recursion, at most ``limit + 1`` passes however deep the input.
    Unbalanced text peels down to ``]]…[[…`` (no ``[]`` is left), whose unclosed ``[`` are added
    to the count: it may count such text too deep, never too shallow (``json.loads`` refuses it anyway).
    """
    brackets = _STRING.sub(b"", raw).translate(_AS_SQUARE, _NOT_BRACKETS)
    depth = 0
    while brackets and (limit is None or depth <= limit):
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            return depth + brackets.count(b"[")
        depth, brackets = depth + 1, peeled
    return depth


class _OutOfRange(ValueError):
    pass


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _OutOfRange(token)
    return value


def _check_strings(value: Any) -> None:
    """Refuse strings (and keys) that are not valid Unicode: they could never be answered or stored.

    The depth is already bounded by ``MAX_DEPTH``, so recursion here is bounded too.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid("strings must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


#: ``bytes.translate`` table turning every ASCII digit into ``0``, both opening brackets into ``[``
#: and every other byte into a space: one pass over a body finds its digit runs and counts its brackets.
_SCAN = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x5B if byte in b"{[" else 0x20 for byte in range(256))
#: 19 digits in a row: the shortest integer literal that may not fit in 64 bits.
_LONG_DIGITS = b"0" * 19


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed value (a scalar is 0), one level at a time."""
    depth, level = 0, [value] if isinstance(value, dict | list) else []
    while level:
        depth += 1
        level = [
            item
            for container in level
            for item in (container.values() if isinstance(container, dict) else container)
            if isinstance(item, dict | list)
        ]
    return depth


def _fast_json(raw: bytes) -> Any:
    """``raw`` through orjson when its answer is certainly ``json_value``'s; else ``_NOT_FAST``.

    orjson refuses what the exact path refuses or reads differently (NaN and Infinity, infinite
    numbers, lone surrogates, byte order marks, other encodings): those go to the exact path,
    which gives them their precise 400 or 422. It reads integers past 64 bits as floats, so a
    body with 19 digits in a row (in a string or not) goes there too. orjson nests at most 1024
    deep, so the depth is checked after, and only when there are enough brackets to matter.
    """
    scanned = raw.translate(_SCAN)
    if _LONG_DIGITS in scanned:
        return _NOT_FAST
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_FAST
    if scanned.count(b"[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise Invalid(f"JSON nests deeper than {MAX_DEPTH} levels")
    return value


_NOT_FAST = object()


def json_value(raw: bytes) -> Any:
    """``raw`` parsed as JSON, within ``MAX_DEPTH`` and with finite numbers only.

    A well-formed body (every webhook) is parsed once by orjson, faster than the exact path below
    (docs/performance.md#figures-from-code-comments), which stays the reference for every body
    orjson cannot vouch for.
    """
    value = _fast_json(raw)
    return _exact_json(raw) if value is _NOT_FAST else value


def _exact_json(raw: bytes) -> Any:
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise Invalid(f"JSON nests deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _OutOfRange:
        raise Invalid("a number in the body is out of range") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise Malformed() from None
    _check_strings(value)
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON body that must be an object."""
    value = json_value(raw)
    if not isinstance(value, dict):
        raise Invalid("body must be a JSON object")
    return value
