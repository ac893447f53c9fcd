"""The edge's parsers accept exactly what they document and refuse everything else with a 4xx (docs/api.md#conventions).

Property-based where it matters: any text, bytes or JSON goes in; out comes the parsed value or
``Invalid``/``Malformed`` (or ``Unauthorized``, ``BadCursor``, ``False``), never another exception.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import hypothesis
import hypothesis.strategies as st
import jwt
import pytest
from bson import ObjectId
from hypothesis import given

from adapters.reads import MAX_MILLIS, BadCursor, decode_cursor, encode_cursor
from adapters.serialize import INTERNAL, VIEWS, payment_json
from ingress import parse, signature
from ingress.auth import Unauthorized, caller_from_claims, decode
from ingress.body_limit import BodyLimit
from payments_ops.events import sign

fast = hypothesis.settings(max_examples=200, deadline=None, database=None)
SECRET = "unit-test-jwt-secret-of-at-least-32-bytes"

finite_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
).filter(lambda v: _valid_unicode(v))


def _valid_unicode(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


# Ids ------------------------------------------------------------------------------------------------


@fast
@given(st.text(max_size=30) | st.from_regex(r"[0-9a-fA-F]{24}\n?", fullmatch=True))
def test_object_id_accepts_exactly_24_ascii_hex(value: str) -> None:
    """Any text: an ObjectId when it is 24 ASCII hex digits and nothing else, else 422 naming the field."""
    expected = re.fullmatch(r"[0-9a-fA-F]{24}", value, re.ASCII) is not None
    try:
        assert parse.object_id(value, "serviceId") == ObjectId(value) and expected
    except parse.Invalid as refused:
        assert not expected and (refused.status, refused.field) == (422, "serviceId")


@pytest.mark.parametrize(
    "value", ["65f0000000000000000000aa\n", "\uff16\uff15f0000000000000000000aa", {"$gt": ""}, None, 12]
)
def test_object_id_refuses_the_reported_shapes(value: Any) -> None:
    """A trailing newline, full-width digits, an operator object or a non-string: 422."""
    with pytest.raises(parse.Invalid):
        parse.object_id(value, "serviceId")


@fast
@given(st.text(max_size=40) | st.from_regex(r"(pi|evt|ch)_[A-Za-z0-9_]{1,20}\n?", fullmatch=True))
def test_intent_ids_are_pi_and_ascii_only(value: str) -> None:
    """Any text: accepted only as ``pi_`` followed by ASCII letters, digits and underscores."""
    expected = re.fullmatch(r"pi_[A-Za-z0-9_]{1,250}", value, re.ASCII) is not None
    try:
        assert parse.intent_id(value, "paymentIntentId") == value and expected
    except parse.Invalid:
        assert not expected


# Query strings --------------------------------------------------------------------------------------


@fast
@given(st.text(max_size=8) | st.integers(-5, 200).map(str) | st.text(st.characters(categories=["Nd", "No"])))
def test_query_int_takes_ascii_digits_in_range_only(raw: str) -> None:
    """Any text as ``limit``: an int in 1..100 when it is ASCII digits in range, else 422 (never ValueError)."""
    expected = re.fullmatch(r"[0-9]+", raw, re.ASCII) is not None and 1 <= int(raw) <= 100
    try:
        assert 1 <= parse.query_int({"limit": raw}, "limit", 20, 1, 100) == int(raw) and expected
    except parse.Invalid as refused:
        assert not expected and refused.field == "limit"


@pytest.mark.parametrize("raw", ["²", "١٢", "+5", " 5", "5\n", "1_0", "9" * 5000, "", "0", "101"])
def test_query_int_refuses_the_reported_shapes(raw: str) -> None:
    """Unicode digits, signs, spaces, underscores, 5000 digits, empty and out of range: 422."""
    with pytest.raises(parse.Invalid):
        parse.query_int({"limit": raw}, "limit", 20, 1, 100)
    assert parse.query_int({}, "limit", 20, 1, 100) == 20


def test_choice_and_cursor_take_known_values_only() -> None:
    """An enum takes its members (empty means absent); a cursor is URL-safe base64 of at most 128 characters."""
    assert parse.choice({"status": "pending"}, "status", {"pending"}) == "pending"
    assert parse.choice({"status": ""}, "status", {"pending"}) is None
    for bad in ("PENDING", "pending\n", '{"$ne": 1}'):
        with pytest.raises(parse.Invalid):
            parse.choice({"status": bad}, "status", {"pending"})
    assert parse.cursor({"cursor": "abc-_09"}) == "abc-_09" and parse.cursor({}) is None
    for bad in ("%%%", "a" * 129, "abc\n", "ab=="):
        with pytest.raises(parse.Invalid):
            parse.cursor({"cursor": bad})


# JSON bodies ----------------------------------------------------------------------------------------


@fast
@given(finite_json)
def test_json_within_the_depth_limit_parses_as_json_does(value: Any) -> None:
    """Any JSON of finite numbers and valid strings, nesting up to the limit, parses to itself."""
    raw = json.dumps(value).encode()
    assert parse.nesting_depth(raw) == _depth(value)
    assert parse.json_value(raw) == value


@fast
@given(st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
def test_any_bytes_parse_or_are_refused_with_a_4xx(raw: bytes) -> None:
    """Any bytes: a value, or 400 malformed_json / 422 validation_error; never another exception."""
    try:
        parse.json_value(raw)
    except (parse.Malformed, parse.Invalid) as refused:
        assert (refused.status, refused.code) in {(400, "malformed_json"), (422, "validation_error")}


@pytest.mark.parametrize("depth", [33, 1000, 100_000, 1_000_000])
def test_deep_nesting_is_refused_before_parsing(depth: int) -> None:
    """Arrays or objects nested past 32 levels: 422, however deep (no RecursionError)."""
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth, b"[" * depth):
        with pytest.raises(parse.Invalid):
            parse.json_value(raw)
    assert parse.json_value(b"[" * 32 + b"]" * 32) is not None


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b"NaN", 400), (b'{"a": Infinity}', 400), (b"[-Infinity]", 400), (b"1e400", 422), (b'"\\ud800"', 422),
     (b'{"\\udfff": 1}', 422), (b"1" * 5000, 400), (b"\xff", 400), (b"", 400), (b"{", 400)],
)  # fmt: skip
def test_non_json_numbers_and_lone_surrogates_are_refused(raw: bytes, status: int) -> None:
    """NaN/Infinity and 5000-digit ints are not JSON (400); 1e400 and lone surrogates cannot be used (422)."""
    with pytest.raises((parse.Malformed, parse.Invalid)) as refused:
        parse.json_value(raw)
    assert isinstance(refused.value, parse.Malformed | parse.Invalid) and refused.value.status == status


def test_json_object_wants_an_object() -> None:
    """A body that parses but is not an object is 422."""
    assert parse.json_object(b'{"a": 1}') == {"a": 1}
    with pytest.raises(parse.Invalid):
        parse.json_object(b"[1]")


@fast
@given(st.integers(0, 2**63 - 1) | st.integers() | st.booleans() | st.floats() | st.text(max_size=5) | st.none())
def test_minor_amount_is_a_whole_int64_or_absent(value: Any) -> None:
    """A client amount is None or an int from 0 to 2**63-1 (not a bool, float or string)."""
    ok = value is None or (type(value) is int and 0 <= value < 2**63)
    try:
        assert parse.minor_amount(value, "amount") == value and ok
    except parse.Invalid:
        assert not ok


# Cursors ---------------------------------------------------------------------------------------------


@fast
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_a_cursor_given_out_decodes_to_its_page_boundary(at: datetime) -> None:
    """encode_cursor then decode_cursor gives the document's time (to the millisecond) and id."""
    oid = ObjectId()
    decoded_at, decoded_id = decode_cursor(encode_cursor({"createdAt": at, "_id": oid}))
    assert decoded_id == oid and abs((decoded_at - at).total_seconds()) < 0.002


@fast
@given(st.text(max_size=60) | st.builds(lambda n: f"{n}:{'a' * 24}", st.integers(-(10**40), 10**40)))
def test_any_cursor_decodes_or_is_a_bad_cursor(raw: str) -> None:
    """Any text, or the base64 of any millis: a (datetime, ObjectId) or BadCursor, never OverflowError."""
    for cursor in (raw, base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")):
        try:
            at, _ = decode_cursor(cursor)
            assert at.tzinfo is not None
        except BadCursor:
            pass


def test_out_of_range_millis_are_a_bad_cursor() -> None:
    """Millis past year 9999 (datetime's end) are refused, the last millisecond of 9999 is not."""

    def cursor(millis: int) -> str:
        return base64.urlsafe_b64encode(f"{millis}:{'a' * 24}".encode()).decode()

    assert decode_cursor(cursor(MAX_MILLIS))[0].year == 9999
    for millis in (MAX_MILLIS + 1, 10**20, -1):
        with pytest.raises(BadCursor):
            decode_cursor(cursor(millis))


# Webhook signatures ----------------------------------------------------------------------------------

BODY = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    """Stripe's library checks only the lower bound: more than 300 s ahead is refused too; 299 s is fine."""
    now = int(time.time())
    assert signature.verify(BODY, sign(BODY, "whsec_x", now + 250), ["whsec_x"])
    assert not signature.verify(BODY, sign(BODY, "whsec_x", now + 301), ["whsec_x"])
    assert not signature.verify(BODY, sign(BODY, "whsec_x", now + 10**8), ["whsec_x"])


@pytest.mark.parametrize(
    "stamp", ["\u0661\u0667" + "\u0660" * 8, "1_700_000_000", " 1700000000", "+1700000000", "", "1" * 13]
)
def test_the_timestamp_must_be_ascii_digits(stamp: str) -> None:
    """``t=`` that int() would take (Arabic digits, underscores, spaces, a sign) is refused."""
    assert signature.timestamp(f"t={stamp},v1=abc") is None
    assert signature.timestamp("t=1,t=2,v1=abc") is None and signature.timestamp("t=17,v1=abc") == 17


@fast
@given(header=st.text(max_size=120), body=st.binary(max_size=50))
def test_any_signature_header_verifies_or_not_without_raising(header: str, body: bytes) -> None:
    """Any header text (non-ASCII included) and any body: a plain False, never an exception."""
    assert signature.verify(body, header, ["whsec_x"]) is False


# Tokens ----------------------------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
claim_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@fast
@given(st.text(max_size=300))
def test_any_token_text_is_claims_or_unauthorized(token: str) -> None:
    """Any string as a bearer token: verified claims or Unauthorized, never another exception."""
    with contextlib.suppress(Unauthorized):
        decode(token, SECRET)


@fast
@given(
    claims=st.fixed_dictionaries(
        {}, optional={"id": claim_values, "sub": claim_values, "role": claim_values, "exp": claim_values}
    )
)
def test_any_signed_claims_are_a_caller_or_unauthorized(claims: dict[str, Any]) -> None:
    """Signed claims of any types: a Caller only with an int exp ahead (30 days at most), a 24-hex id, users' role."""
    users = {ObjectId("65f0000000000000000000aa"): {"role": "customer"}}
    try:
        token = jwt.encode(claims, SECRET, "HS256")
    except (TypeError, ValueError):
        return
    try:
        who = caller_from_claims(decode(token, SECRET), users.get)
    except Unauthorized:
        return
    assert type(claims["exp"]) is int and time.time() < claims["exp"] <= time.time() + 30 * 86400
    assert who.id in users and who.role == "customer" and claims.get("role") in (None, "customer")


def test_a_token_needs_exp_and_an_existing_user() -> None:
    """No ``exp`` is 401 however well signed; so is a user id with no ``users`` document."""
    forever = jwt.encode({"id": "65f0000000000000000000aa", "role": "customer"}, SECRET, "HS256")
    with pytest.raises(Unauthorized):
        decode(forever, SECRET)
    fine = decode(jwt.encode({"id": "65f0000000000000000000aa", "exp": int(time.time()) + 60}, SECRET, "HS256"), SECRET)
    with pytest.raises(Unauthorized):
        caller_from_claims(fine, lambda _: None)
    assert caller_from_claims(fine, lambda _: {"role": "admin"}).admin


# What each caller sees ---------------------------------------------------------------------------------


@fast
@given(extra=st.dictionaries(st.text(max_size=12), st.text(max_size=5) | st.floats() | st.binary(max_size=3)))
def test_views_show_their_allow_list_and_answer_as_strict_json(extra: dict[str, Any]) -> None:
    """Whatever a document holds: customers and specialists see only listed fields, nobody sees bookkeeping."""
    doc = {**extra, "_id": ObjectId(), "openKey": "k", "creatingUntil": datetime.now(UTC), "customerId": ObjectId()}
    for view in ("customer", "specialist", "admin"):
        body = payment_json(doc, view)
        json.dumps(body, allow_nan=False)  # what JSONResponse does: no NaN, no bytes
        assert not INTERNAL & set(body)
        if view != "admin":
            assert set(body) <= set(VIEWS[view]) | {"id"}


# The body cap ---------------------------------------------------------------------------------------------


def test_the_body_cap_stops_reading_a_stream_at_the_cap() -> None:
    """A 100 KiB chunked body against a 10 KiB cap: 413 after about 10 KiB has been read, not all of it."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": pulled < 100}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        raise AssertionError("read the whole body")

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(BodyLimit(app, {}, default=10 * 1024)(scope, receive, send))
    assert pulled == 11 and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "payload_too_large"
