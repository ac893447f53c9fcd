"""The MERN backend's JWTs: HS256 with ``JWT_SECRET``, algorithm pinned, ``exp`` required and checked.

Tokens carry the user id as ``id`` (or ``sub``, or ``_id``) and usually ``role``; without a role
claim the role is read from ``users``. The user must exist in ``users``: every request looks it up
once (one ``find_one`` by ``_id`` projecting ``role``; nothing is cached across requests), so a
token for a deleted or invented user id gets nothing. Anything wrong with a token (no ``exp``, a
claim of the wrong type, a role that is not one of ``ROLES``) is a plain 401: the reason is logged,
never told to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from bson import ObjectId
from starlette.requests import Request

from ingress import parse

log = logging.getLogger(__name__)

ROLES = frozenset({"customer", "specialist", "admin"})
#: Longest token accepted; the MERN backend's are a few hundred bytes.
MAX_TOKEN = 8192

#: ``users`` lookup by ``_id``: the document (at least its ``role``), or None when there is no such user.
UserLookup = Callable[[ObjectId], Mapping[str, Any] | None]


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
    """The verified claims; raises ``Unauthorized`` for a bad signature, algorithm, expiry or no ``exp``.

    Anything the JWT library raises on a hostile token is a bad token, not a server error.
    """
    if len(token) > MAX_TOKEN:
        raise Unauthorized("token too long")
    try:
        claims: Any = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"], "verify_exp": True})
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError) as error:
        raise Unauthorized(f"invalid token: {type(error).__name__}") from None
    if not isinstance(claims, dict):
        raise Unauthorized("claims are not an object")
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], int | float):
        raise Unauthorized("exp is not a NumericDate")  # PyJWT also takes "1900000000" and true
    return claims


def _role(value: object, source: str) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise Unauthorized(f"{source} role is not one of {sorted(ROLES)}")
    return value


def caller_from_claims(claims: Mapping[str, Any], find_user: UserLookup) -> Caller:
    """Who is calling: the id claim as an ObjectId of an existing user, and the role (claim, else ``users``)."""
    raw_id = claims.get("id") or claims.get("sub") or claims.get("_id")
    try:
        user_id = parse.object_id(raw_id, "id")
    except parse.Invalid:
        raise Unauthorized("token has no ObjectId user id") from None
    user = find_user(user_id)
    if user is None:
        raise Unauthorized("token's user is not in users")
    claimed = claims.get("role")
    role = _role(claimed, "token") if claimed is not None else _role(user.get("role"), "users")
    return Caller(id=user_id, role=role)
