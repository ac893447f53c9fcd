"""The typed readers of Stripe's JSON: each gives back a value of its type, or PermanentError naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import readers
from domain.errors import PermanentError
from domain.money import MAXIMUM

NOT_INTEGERS = st.one_of(
    st.booleans(),
    st.floats(),
    st.text(max_size=12),
    st.integers().map(str),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def fails(read: Any, value: Any, *args: Any, says: str = "") -> str:
    with pytest.raises(PermanentError) as raised:
        read(value, "data.object.field", *args)
    message = str(raised.value)
    assert message.startswith("data.object.field") and says in message, message
    return message


@given(st.integers(0, MAXIMUM))
def test_an_amount_is_any_integer_from_zero_to_eight_digits(value: int) -> None:
    assert readers.amount(value, "amount") == value


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAXIMUM + 1)))
def test_an_amount_out_of_range_is_refused(value: int) -> None:
    fails(readers.amount, value, says=f"{value} is out of range")


@given(NOT_INTEGERS)
def test_only_a_json_integer_is_an_amount_or_a_time(value: Any) -> None:
    """Not a bool (an int in Python), not a float, not "79900"."""
    fails(readers.amount, value, says=f"expected an integer, got {type(value).__name__}")
    fails(readers.timestamp, value, says=f"expected an integer, got {type(value).__name__}")


@given(st.integers(readers.EARLIEST, readers.LATEST))
def test_a_time_from_2001_to_2100_is_read(value: int) -> None:
    assert readers.timestamp(value, "created") == value


@given(st.one_of(st.integers(max_value=readers.EARLIEST - 1), st.integers(min_value=readers.LATEST + 1)))
def test_a_time_out_of_range_is_refused(value: int) -> None:
    """10**18 and -10**15 would not even fit a datetime: refused before anything reads them."""
    fails(readers.timestamp, value, says="is out of range")


IDS = st.from_regex(r"[A-Za-z0-9_]{1,40}", fullmatch=True)


@given(st.sampled_from(["pi", "ch", "re", "dp", "evt"]), IDS)
def test_a_stripe_id_with_its_prefix_is_read(prefix: str, rest: str) -> None:
    value = f"{prefix}_{rest}"
    assert readers.stripe_id(value, "id", prefix) == value
    assert readers.stripe_id(value, "id") == value


@pytest.mark.parametrize(
    "value",
    ["pi_1\n", "pi_", "pi-1", "pi_1 ", " pi_1", "PI_1", "pi_\u0661", "ch_1", "pi_a$b", 1, None, ["pi_1"]],
)
def test_anything_else_is_not_a_payment_intent_id(value: Any) -> None:
    fails(readers.stripe_id, value, "pi", says="expected a Stripe id (pi_…)")


def test_a_bad_id_is_shown_only_when_short() -> None:
    assert fails(readers.stripe_id, "pi 1", "pi").endswith("got 'pi 1'")
    assert fails(readers.stripe_id, "x" * 41, "pi").endswith("got str")


@given(st.from_regex(r"[A-Za-z]{3}", fullmatch=True))
def test_a_currency_is_three_ascii_letters_upper_cased(value: str) -> None:
    assert readers.currency(value, "currency") == value.upper()


@pytest.mark.parametrize("value", ["rupees", "in", "in1", "ínr", "inr\n", "", None, 356])
def test_anything_else_is_not_a_currency(value: Any) -> None:
    fails(readers.currency, value, says="expected a three-letter currency code")


@pytest.mark.parametrize("value", ["succeeded", "needs_response", "warning_closed"])
def test_a_status_word(value: str) -> None:
    assert readers.word(value, "status") == value


@pytest.mark.parametrize("value", ["", "Succeeded", "succeeded\n", "x" * 65, None, 1, True])
def test_anything_else_is_not_a_status(value: Any) -> None:
    fails(readers.word, value, says="expected a status word")


def test_text_is_a_string_of_bounded_length() -> None:
    assert readers.text("Your card was declined.", "message") == "Your card was declined."
    fails(readers.text, 7, says="expected text, got int")
    fails(readers.text, "x" * (readers.TEXT_MAX + 1), says="longer than")


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_metadata_of_strings_is_read(value: dict[str, str]) -> None:
    assert readers.metadata(value, "metadata") == value


def test_metadata_names_the_key_that_is_not_a_string() -> None:
    with pytest.raises(PermanentError, match=r"^metadata\.customerId: expected a string, got int$"):
        readers.metadata({"source": "x", "customerId": 7}, "metadata")
    fails(readers.metadata, ["x"], says="expected an object, got list")


def test_a_list_object_gives_its_data_and_names_the_item_that_is_not_an_object() -> None:
    assert readers.listing({"object": "list", "data": [{"id": "ch_1"}]}, "charges") == [{"id": "ch_1"}]
    fails(readers.listing, {"data": None}, says="data.object.field.data: expected a list, got NoneType")
    fails(readers.listing, {"data": [{}, "x"]}, says="data.object.field.data[1]: expected an object, got str")


def test_field_and_required_tell_absent_null_and_wrong_apart() -> None:
    """Absent is None; null is None only where Stripe allows it; a required field missing is named."""
    obj = {"amount": None, "latest_charge": None}
    assert readers.field({}, "amount", "data.object", readers.amount) is None
    assert readers.field(obj, "latest_charge", "data.object", readers.id_reader("ch"), nullable=True) is None
    with pytest.raises(PermanentError, match=r"^data\.object\.amount: expected an integer, got NoneType$"):
        readers.field(obj, "amount", "data.object", readers.amount)
    with pytest.raises(PermanentError, match=r"^data\.object\.status: expected a status word, got NoneType$"):
        readers.required({}, "status", "data.object", readers.word)
    with pytest.raises(PermanentError, match=r"^created: "):
        readers.required({"created": 10**18}, "created", "", readers.timestamp)
