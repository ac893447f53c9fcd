"""``ops_sessions``: the dashboard's logged-in sessions, kept on the server so that logging out ends them.

The cookie holds 32 random bytes; the database holds only their SHA-256 (so a copy of the
collection opens nothing), with the person's name, the session's CSRF token and its expiry. A
session is valid while its document exists and ``expiresAt`` is ahead (checked on every read: the
TTL index only sweeps expired ones away, about once a minute). Logout deletes the document.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from adapters.mongo import Doc, now

#: What ``secrets.token_urlsafe(32)`` gives; anything else is not one of ours and is never looked up.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def ensure_ops_session_indexes(db: Database[Doc]) -> None:
    db.ops_sessions.create_index([("expiresAt", ASCENDING)], expireAfterSeconds=0, name="expires_ttl")


@dataclass(frozen=True)
class OpsSession:
    who: str
    csrf: str
    expires: datetime


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class MongoOpsSessions:
    def __init__(self, db: Database[Doc]) -> None:
        self.collection: Collection[Doc] = db.ops_sessions

    def create(self, who: str, ttl: timedelta, address: str | None) -> tuple[str, OpsSession]:
        """A new session for ``who``: the id for the cookie, and the session."""
        session_id = secrets.token_urlsafe(32)
        at = now()
        session = OpsSession(who, secrets.token_urlsafe(32), at + ttl)
        self.collection.insert_one({"_id": _key(session_id), "who": who, "csrf": session.csrf,
                                    "address": address, "createdAt": at, "expiresAt": session.expires})  # fmt: skip
        return session_id, session

    def find(self, session_id: str) -> OpsSession | None:
        if not SESSION_ID.fullmatch(session_id):
            return None
        doc = self.collection.find_one({"_id": _key(session_id), "expiresAt": {"$gt": now()}})
        if doc is None:
            return None
        return OpsSession(str(doc["who"]), str(doc["csrf"]), doc["expiresAt"])

    def delete(self, session_id: str) -> None:
        if SESSION_ID.fullmatch(session_id):
            self.collection.delete_one({"_id": _key(session_id)})
