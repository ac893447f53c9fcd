"""Event parsing: a signed event whose fields do not fit is a PermanentError naming the field, at once.

Whatever JSON Stripe's envelope carries, ``StripeEvent.parse`` either returns an event whose
fields the handlers can use as they are, or raises ``PermanentError``: never ``ValueError``,
``AttributeError`` or ``OverflowError`` later, in a handler, after the payment moved.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import PermanentError
from domain.events import StripeEvent
from payments_ops import events

T0 = 1_700_000_000


def intent(event_type: str = "payment_intent.succeeded", **changes: Any) -> dict[str, Any]:
    obj = events.payment_intent(event_type, "pi_1", 79900, "inr", {"source": events.SOURCE, "customerId": "c1"})
    obj.update(changes)
    return events.event(event_type, obj, created=T0, event_id="evt_1")


def refund(event_type: str = "refund.created", **changes: Any) -> dict[str, Any]:
    obj = events.fixture("refund")
    obj.update({"payment_intent": "pi_1", **changes})
    return events.event(event_type, obj, created=T0, event_id="evt_1")


def dispute(event_type: str = "charge.dispute.created", **changes: Any) -> dict[str, Any]:
    obj = events.fixture("dispute")
    obj.update({"payment_intent": "pi_1", **changes})
    return events.event(event_type, obj, created=T0, event_id="evt_1")


def charge(event_type: str = "charge.refunded", **changes: Any) -> dict[str, Any]:
    obj = events.fixture("charge")
    obj.update({"payment_intent": "pi_1", **changes})
    return events.event(event_type, obj, created=T0, event_id="evt_1")


def rejects(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError) as raised:
        StripeEvent.parse(payload)
    assert message in str(raised.value), str(raised.value)
    assert str(raised.value).startswith("event evt_1: "), str(raised.value)


# The events of the issue, each with the field its error must name.
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**intent(), "created": 10**18}, "created: 1000000000000000000 is out of range"),
        ({**intent(), "created": -(10**15)}, "created: -1000000000000000 is out of range"),
        (refund(amount="abc"), "data.object.amount: expected an integer, got str"),
        (
            intent("payment_intent.payment_failed", last_payment_error="boom"),
            "data.object.last_payment_error: expected an object, got str",
        ),
        (intent(amount="79900", amount_received="79900"), "data.object.amount: expected an integer, got str"),
    ],
    ids=["created 10**18", "created -10**15", "refund amount abc", "last_payment_error boom", "amount 79900 string"],
)
def test_the_events_of_the_issue_are_permanent_and_name_the_field(payload: dict[str, Any], message: str) -> None:
    rejects(payload, message)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**intent(), "created": True}, "created: expected an integer, got bool"),
        ({**intent(), "created": 1_700_000_000.5}, "created: expected an integer, got float"),
        ({**intent(), "created": "1700000000"}, "created: expected an integer, got str"),
        ({**intent(), "type": "payment_intent.succeeded\n"}, "type: expected a Stripe event type"),
        ({**intent(), "data": []}, "data: expected an object, got list"),
        ({**intent(), "data": {"object": None}}, "data.object: expected an object, got NoneType"),
        (intent(id="pi_1\n"), "data.object.id: expected a Stripe id (pi_…)"),
        (intent(id="ch_1"), "data.object.id: expected a Stripe id (pi_…)"),
        (intent(amount=True), "data.object.amount: expected an integer, got bool"),
        (intent(amount=799.0), "data.object.amount: expected an integer, got float"),
        (intent(amount=-1), "data.object.amount: -1 is out of range"),
        (intent(amount=100_000_000), "data.object.amount: 100000000 is out of range"),
        (intent(amount_received="79900"), "data.object.amount_received: expected an integer, got str"),
        (intent(currency="rupees"), "data.object.currency: expected a three-letter currency code"),
        (intent(currency=None), "data.object.currency: expected a three-letter currency code, got NoneType"),
        (intent(metadata="x"), "data.object.metadata: expected an object, got str"),
        (intent(metadata={"customerId": 7}), "data.object.metadata.customerId: expected a string, got int"),
        (intent(latest_charge=42), "data.object.latest_charge: expected a Stripe id (ch_…, py_…), got int"),
        (intent(latest_charge={"id": "re_1"}), "data.object.latest_charge.id: expected a Stripe id (ch_…, py_…)"),
        (intent(last_payment_error={"message": 7}), "data.object.last_payment_error.message: expected text, got int"),
        (intent(charges={"data": "x"}), "data.object.charges.data: expected a list, got str"),
        (intent(charges={"data": [3]}), "data.object.charges.data[0]: expected an object, got int"),
        (intent(object="refund"), "data.object.object: expected 'payment_intent'"),
        (refund(status=None), "data.object.status: expected a status word, got NoneType"),
        (refund(id="pi_1"), "data.object.id: expected a Stripe id (re_…, pyr_…)"),
        (refund(charge=["ch_1"]), "data.object.charge: expected a Stripe id (ch_…, py_…), got list"),
        (refund(payment_intent=1), "data.object.payment_intent: expected a Stripe id (pi_…), got int"),
        (refund(metadata={"refundRequestId": None}), "data.object.metadata.refundRequestId: expected a string"),
        (refund(failure_reason=["x"]), "data.object.failure_reason: expected text, got list"),
        (dispute(created=10**18), "data.object.created: 1000000000000000000 is out of range"),
        (dispute(evidence_details={"due_by": "soon"}), "data.object.evidence_details.due_by: expected an integer"),
        (dispute(evidence_details="x"), "data.object.evidence_details: expected an object, got str"),
        (dispute(amount="1000"), "data.object.amount: expected an integer, got str"),
        (dispute(status=3), "data.object.status: expected a status word, got int"),
        (dispute(id="evt_1"), "data.object.id: expected a Stripe id (dp_…, du_…)"),
        (charge(id="pi_1"), "data.object.id: expected a Stripe id (ch_…, py_…)"),
        (charge(refunds={"data": {}}), "data.object.refunds.data: expected a list, got dict"),
    ],
)
def test_a_field_that_does_not_fit_is_named(payload: dict[str, Any], message: str) -> None:
    rejects(payload, message)


def test_an_event_without_a_usable_id_names_it() -> None:
    with pytest.raises(PermanentError, match=r"^id: expected a Stripe id \(evt_…\), got int$"):
        StripeEvent.parse({**intent(), "id": 12})
    with pytest.raises(PermanentError, match=r"^event: expected an object, got list$"):
        StripeEvent.parse([intent()])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        intent(),
        intent("payment_intent.payment_failed"),
        intent("payment_intent.processing"),
        intent(latest_charge={"id": "ch_1", "object": "charge", "amount": "300"}),  # the local Stripe expands it
        intent(last_payment_error={"code": "card_declined", "message": None}),
        intent(charges={"object": "list", "data": [{"id": "ch_1"}], "has_more": False}),
        events.event("payment_intent.processing", {"id": "pi_1", "object": "payment_intent"}, created=T0),
        refund(),
        refund("refund.failed", status="failed", failure_reason="expired_or_canceled_card"),
        refund("charge.refund.updated", payment_intent=None, charge="ch_1", metadata={"refundRequestId": "r1"}),
        dispute(),
        dispute("charge.dispute.closed", status="won", evidence_details=None),
        charge(),
        charge(refunds={"object": "list", "data": []}),
        events.event("customer.created", {"id": "cus_1", "object": "customer"}, created=T0),
    ],
)
def test_what_stripe_sends_parses(payload: dict[str, Any]) -> None:
    event = StripeEvent.parse(payload)
    assert event.object is payload["data"]["object"] and event.created_at.year == 2023


def test_the_bounds_are_inclusive() -> None:
    for created in (1_000_000_000, 4_102_444_800):
        assert StripeEvent.parse({**intent(), "created": created}).created == created
    for amount in (0, 99_999_999):
        assert StripeEvent.parse(intent(amount=amount, amount_received=amount)).object["amount"] == amount


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)

#: Every field a handler reads, by the event it is read from.
USED = [
    (intent, ["created"], []),
    (intent, ["data", "object", "id"], []),
    (intent, ["data", "object", "amount"], []),
    (intent, ["data", "object", "amount_received"], []),
    (intent, ["data", "object", "currency"], []),
    (intent, ["data", "object", "metadata"], []),
    (intent, ["data", "object", "metadata", "paymentRecordId"], []),
    (intent, ["data", "object", "latest_charge"], []),
    (intent, ["data", "object", "last_payment_error"], []),
    (intent, ["data", "object", "last_payment_error", "message"], ["payment_intent.payment_failed"]),
    (refund, ["data", "object", "amount"], []),
    (refund, ["data", "object", "status"], []),
    (refund, ["data", "object", "metadata", "refundRequestId"], []),
    (refund, ["data", "object", "charge"], []),
    (refund, ["data", "object", "reason"], []),
    (dispute, ["data", "object", "status"], []),
    (dispute, ["data", "object", "created"], []),
    (dispute, ["data", "object", "evidence_details", "due_by"], []),
    (charge, ["data", "object", "payment_intent"], []),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(USED), JSON)
def test_any_json_in_a_used_field_parses_or_is_permanent(used: Any, value: Any) -> None:
    """Parse either succeeds with values the handlers can use, or raises PermanentError naming the field."""
    build, path, args = used
    payload = copy.deepcopy(build(*args))
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        event = StripeEvent.parse(payload)
    except PermanentError as error:
        assert ".".join(path) in str(error), (path, str(error))
        return
    event.created_at  # noqa: B018 - a datetime for every accepted created
    obj = event.object
    for key in ("amount", "amount_received"):
        assert obj.get(key) is None or (type(obj[key]) is int and 0 <= obj[key] <= 99_999_999)
    assert isinstance(obj.get("metadata") or {}, dict)
    assert all(isinstance(v, str) for v in (obj.get("metadata") or {}).values())
    decline = obj.get("last_payment_error")
    assert decline is None or isinstance(decline, dict)
