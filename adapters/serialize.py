"""MongoDB documents as JSON, and which fields of a payment each caller may see.

Shared by the ingress (the API, the dashboard) and ``payments-ops``, so every door shows a payment alike.

Ids as 24-hex strings, dates as ISO 8601 UTC; values JSON cannot carry (NaN, Decimal128, bytes)
become null or strings rather than failing the answer.

Who sees what of a ``payments`` document (docs/api.md#who-sees-what). An allow-list per view: a field not
listed is not shown, so a field added to the collection later stays private until named here.

- ``customer`` (the payment's customer): ``id``, ``paymentId``, ``customerId``, ``serviceId``,
  ``serviceType``, ``serviceName``, ``specialistId``, ``specialistName``, ``amount``, ``currency``,
  ``status``, ``amountRefunded``, ``refunds`` (each: ``id``, ``refundRequestId``, ``amount``,
  ``currency``, ``status``, ``reason``, ``createdAt``, ``updatedAt``), ``statusHistory`` (each:
  ``status``, ``at``), ``enrollmentId``, ``activatedAt``, ``createdAt``, ``updatedAt``.
- ``specialist`` (the service's specialist): the same, with ``customerName`` instead of
  ``specialistName``, and ``dispute`` (``id``, ``status``, ``reason``, ``amount``, ``currency``,
  ``createdAt``, ``updatedAt``).
- ``admin`` (role ``admin``): every field, whole (``idempotencyKey``, ``reviewRequired``, e-mails,
  ``stripeEventId``, ``statusHistory[].eventId``, ``lastEventAt``, ``webhookReceivedAt``, …) except
  the bookkeeping ``openKey`` and ``creatingUntil``, which nobody sees.

Nobody but an admin sees e-mail addresses, ``idempotencyKey``, ``reviewRequired`` (the review
details), the Stripe event ids (``stripeEventId``, ``statusHistory[].eventId``) or the event
timings. A caller who is both the customer and the specialist of a payment gets the specialist's
view plus ``specialistName``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

#: Bookkeeping fields of ``payments`` that are nobody's business outside this service, admins included.
INTERNAL = frozenset({"openKey", "creatingUntil"})

_REFUND = frozenset({"id", "refundRequestId", "amount", "currency", "status", "reason", "createdAt", "updatedAt"})
_HISTORY = frozenset({"status", "at"})
_DISPUTE = frozenset({"id", "status", "reason", "amount", "currency", "createdAt", "updatedAt"})

_SHARED: dict[str, frozenset[str] | None] = {
    # field -> None (whole) or the allowed keys of each item (lists) or of the sub-document
    "paymentId": None,
    "customerId": None,
    "serviceId": None,
    "serviceType": None,
    "serviceName": None,
    "specialistId": None,
    "amount": None,
    "currency": None,
    "status": None,
    "amountRefunded": None,
    "refunds": _REFUND,
    "statusHistory": _HISTORY,
    "enrollmentId": None,
    "activatedAt": None,
    "createdAt": None,
    "updatedAt": None,
}
#: The allow-list of each non-admin view.
VIEWS: dict[str, dict[str, frozenset[str] | None]] = {
    "customer": {**_SHARED, "specialistName": None},
    "specialist": {**_SHARED, "customerName": None, "dispute": _DISPUTE},
}


def jsonable(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, bytes):
        return None
    return str(value)  # Decimal128, Timestamp, …: a readable string rather than a failed answer


def _limit(value: Any, keys: frozenset[str] | None) -> Any:
    """``value`` whole (``keys`` None), or only ``keys`` of it (a sub-document) or of each of its items (a list)."""
    if keys is None:
        return value
    if isinstance(value, list):
        return [_limit(item, keys) for item in value]
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k in keys}
    return None


def view_of(doc: Mapping[str, Any], caller_id: ObjectId, admin: bool) -> str:
    """Which view of ``doc`` the caller gets: ``admin``, ``specialist`` or ``customer``."""
    if admin:
        return "admin"
    return "specialist" if doc.get("specialistId") == caller_id else "customer"


def payment_json(doc: Mapping[str, Any], view: str) -> dict[str, Any]:
    """A ``payments`` document as ``view`` may see it; ``id`` is the document's ``_id``."""
    if view == "admin":
        body = {k: v for k, v in doc.items() if k not in INTERNAL and k != "_id"}
    else:
        allowed = dict(VIEWS[view])
        if view == "specialist" and doc.get("customerId") == doc.get("specialistId"):
            allowed.update(VIEWS["customer"])  # their own purchase: they are its customer too
        body = {k: _limit(v, allowed[k]) for k, v in doc.items() if k in allowed}
    return {"id": str(doc["_id"]), **jsonable(body)}
