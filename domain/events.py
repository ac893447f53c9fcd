"""A Stripe event as the worker sees it, parsed and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.errors import PermanentError

#: The ``metadata.source`` this service writes on every PaymentIntent it creates.
SOURCE = "payments-pipeline"


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
        """Check the shape every Stripe event has; raise ``PermanentError`` naming what is missing."""
        event_id = payload.get("id")
        event_type = payload.get("type")
        created = payload.get("created")
        data = payload.get("data")
        obj = data.get("object") if isinstance(data, Mapping) else None
        if not isinstance(event_id, str) or not event_id.startswith("evt_"):
            raise PermanentError("event has no evt_ id")
        if not isinstance(event_type, str) or not event_type:
            raise PermanentError(f"event {event_id} has no type")
        if not isinstance(created, int) or isinstance(created, bool):
            raise PermanentError(f"event {event_id} has no integer created time")
        if not isinstance(obj, Mapping) or not isinstance(obj.get("id"), str):
            raise PermanentError(f"event {event_id} has no data.object with an id")
        return cls(id=event_id, type=event_type, created=created, object=obj, payload=payload)


def created_by_us(obj: Mapping[str, Any]) -> bool:
    """True when a Stripe object carries this service's ``metadata.source``."""
    metadata = obj.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get("source") == SOURCE
