"""A Stripe event as the worker sees it, parsed and checked once.

``StripeEvent.parse`` checks the envelope and every field of ``data.object`` a handler reads
(``domain.readers``), by the kind of object the event type carries. The handlers then use
``event.object`` as it is: a field present is of its type and in range, and one that does not
fit has already failed the event at once, naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain import readers as read
from domain.errors import PermanentError

#: The ``metadata.source`` this service writes on every PaymentIntent it creates.
SOURCE = "payments-pipeline"

OBJECT = "data.object"
INTENT_ID = ("pi",)
CHARGE_ID = ("ch", "py")
REFUND_ID = ("re", "pyr")
DISPUTE_ID = ("dp", "du")


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    created: int
    object: Mapping[str, Any]
    payload: Mapping[str, Any]

    @property
    def object_id(self) -> str:
        return str(self.object.get("id", ""))

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created, UTC)

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> StripeEvent:
        """Check the envelope and the fields the handlers read; ``PermanentError`` names the first that does not fit."""
        event_id = read.required(read.mapping(payload, "event"), "id", "", read.id_reader("evt"))
        try:
            event_type = read.required(payload, "type", "", read.event_type)
            created = read.required(payload, "created", "", read.timestamp)
            data = read.required(payload, "data", "", read.mapping)
            obj = read.required(data, "object", "data", read.mapping)
            check_object(event_type, obj)
        except PermanentError as error:
            raise PermanentError(f"event {event_id}: {error}") from None
        return cls(id=event_id, type=event_type, created=created, object=obj, payload=payload)


def event_id_of(payload: Mapping[str, Any]) -> str | None:
    """The payload's ``evt_…`` id if it has a usable one (to record even an event that does not parse)."""
    try:
        return read.required(read.mapping(payload, "event"), "id", "", read.id_reader("evt"))
    except PermanentError:
        return None


def created_by_us(obj: Mapping[str, Any]) -> bool:
    """True when a Stripe object carries this service's ``metadata.source``."""
    metadata = obj.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get("source") == SOURCE


def _intent(obj: Mapping[str, Any], path: str) -> None:
    read.required(obj, "id", path, read.id_reader(*INTENT_ID))
    read.field(obj, "amount", path, read.amount)
    read.field(obj, "amount_received", path, read.amount)
    read.field(obj, "currency", path, read.currency)
    read.field(obj, "metadata", path, read.metadata)
    charge = obj.get("latest_charge")
    if isinstance(charge, Mapping):  # expanded (the local Stripe always expands it)
        read.required(charge, "id", f"{path}.latest_charge", read.id_reader(*CHARGE_ID))
    else:
        read.field(obj, "latest_charge", path, read.id_reader(*CHARGE_ID), nullable=True)
    error = read.field(obj, "last_payment_error", path, read.mapping, nullable=True)
    if error is not None:
        read.field(error, "message", f"{path}.last_payment_error", read.text, nullable=True)
    read.field(obj, "charges", path, read.listing, nullable=True)


def _charge(obj: Mapping[str, Any], path: str) -> None:
    read.required(obj, "id", path, read.id_reader(*CHARGE_ID))
    read.field(obj, "payment_intent", path, read.id_reader(*INTENT_ID), nullable=True)
    read.field(obj, "refunds", path, read.listing, nullable=True)


def check_refund(obj: Mapping[str, Any], path: str) -> None:
    """The fields ``usecases.refunds.record_refund`` reads, whether the refund came in an event or from the API."""
    read.required(obj, "id", path, read.id_reader(*REFUND_ID))
    read.required(obj, "amount", path, read.amount)
    read.required(obj, "status", path, read.word)
    read.field(obj, "payment_intent", path, read.id_reader(*INTENT_ID), nullable=True)
    read.field(obj, "charge", path, read.id_reader(*CHARGE_ID), nullable=True)
    read.field(obj, "metadata", path, read.metadata)
    read.field(obj, "reason", path, read.text, nullable=True)
    read.field(obj, "failure_reason", path, read.text, nullable=True)


def _dispute(obj: Mapping[str, Any], path: str) -> None:
    read.required(obj, "id", path, read.id_reader(*DISPUTE_ID))
    read.required(obj, "status", path, read.word)
    read.field(obj, "amount", path, read.amount)
    read.field(obj, "currency", path, read.currency)
    read.field(obj, "reason", path, read.text, nullable=True)
    read.field(obj, "charge", path, read.id_reader(*CHARGE_ID), nullable=True)
    read.field(obj, "payment_intent", path, read.id_reader(*INTENT_ID), nullable=True)
    read.field(obj, "created", path, read.timestamp)
    details = read.field(obj, "evidence_details", path, read.mapping, nullable=True)
    if details is not None:
        read.field(details, "due_by", f"{path}.evidence_details", read.timestamp, nullable=True)


#: Stripe's object kinds by event type prefix (longest first), with the check of each.
KINDS: list[tuple[str, str, Callable[[Mapping[str, Any], str], None]]] = [
    ("payment_intent.", "payment_intent", _intent),
    ("charge.dispute.", "dispute", _dispute),
    ("charge.refund.", "refund", check_refund),
    ("refund.", "refund", check_refund),
    ("charge.", "charge", _charge),
]


def check_object(event_type: str, obj: Mapping[str, Any]) -> None:
    """Check ``data.object`` as the kind of object ``event_type`` carries; of other types only the id."""
    for prefix, kind, check in KINDS:
        if event_type.startswith(prefix):
            stated = obj.get("object", kind)
            if stated != kind:
                raise PermanentError(f"{OBJECT}.object: expected {kind!r}, got {read.shown(stated)}")
            check(obj, OBJECT)
            return
    read.required(obj, "id", OBJECT, read.id_reader())
