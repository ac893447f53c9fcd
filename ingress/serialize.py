"""MongoDB documents as the API's JSON: ObjectIds as 24-hex strings, dates as ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

#: Bookkeeping fields of ``payments`` that are nobody's business outside this service.
INTERNAL = frozenset({"openKey", "creatingUntil"})


def jsonable(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def payment_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A ``payments`` document for its readers; ``id`` is the document's ``_id``."""
    body = {k: jsonable(v) for k, v in doc.items() if k not in INTERNAL and k != "_id"}
    return {"id": str(doc["_id"]), **body}
