"""The MERN backend's JWTs: HS256 with ``JWT_SECRET``, algorithm pinned, expiry checked.

Tokens carry the user id as ``id`` (or ``sub``) and usually ``role``; without a role claim the
role is read from ``users``. Anything wrong with a token is a plain 401: the reason is logged,
never told to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from bson import ObjectId
from bson.errors import InvalidId
from starlette.requests import Request

log = logging.getLogger(__name__)

ROLES = frozenset({"customer", "specialist", "admin"})


class Unauthorized(Exception):
    """No usable token; answered 401."""


@dataclass(frozen=True)
class Caller:
    id: ObjectId
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


def decode(token: str, secret: str) -> dict[str, Any]:
    """The verified claims; raises ``Unauthorized`` for a bad signature, algorithm or expiry."""
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": True})
    except jwt.PyJWTError as error:
        raise Unauthorized(f"invalid token: {type(error).__name__}") from None
    return claims


def caller_from_claims(claims: dict[str, Any], role_of: Callable[[ObjectId], str | None]) -> Caller:
    """Who is calling: the id claim as an ObjectId and the role (claim, else ``users``)."""
    raw_id = claims.get("id") or claims.get("sub") or claims.get("_id")
    try:
        user_id = ObjectId(str(raw_id))
    except (InvalidId, TypeError):
        raise Unauthorized("token has no ObjectId user id") from None
    role = claims.get("role")
    if role is None:
        role = role_of(user_id)
    if role not in ROLES:
        raise Unauthorized(f"unknown role {role!r}")
    return Caller(id=user_id, role=str(role))
