"""The MERN backend's JWTs: HS256 with ``JWT_SECRET``, algorithm pinned, ``exp`` required and bounded.

Tokens carry the user id as ``id`` (or ``sub``, or ``_id``) and often ``role``. The user must
exist in ``users``: every request looks it up once (one ``find_one`` by ``_id`` projecting
``role``; nothing is cached across requests), so a token for a deleted or invented user id gets
nothing. The role in ``users`` decides, never the token: a role claim that disagrees with it is
refused (a customer's token claiming ``admin`` read admin statistics), so a demoted user's old
token stops working at once. ``exp`` must be a whole number of seconds no further ahead than
``JWT_MAX_AGE_DAYS``: ``1e308`` or ``10**30`` would make a leaked token valid for ever. Anything
wrong with a token is a plain 401: the reason is logged, never told to the caller.
"""

from __future__ import annotations

import logging
import time
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
#: ``JWT_MAX_AGE_DAYS``'s default: how far ahead a token's ``exp`` may be.
DEFAULT_MAX_AGE_DAYS = 30

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


def decode(
    token: str, secret: str, max_age_days: int = DEFAULT_MAX_AGE_DAYS, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """The verified claims; raises ``Unauthorized`` for a bad signature, algorithm or expiry, or an ``exp``
    that is missing, not an integer, or more than ``max_age_days`` ahead.

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
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise Unauthorized("exp is not a whole number of seconds")  # PyJWT also takes "1900000000", true, 1e308
    if exp > clock() + max_age_days * 86400:
        raise Unauthorized(f"exp is more than {max_age_days} days ahead")
    return claims


def _role(value: object, source: str) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise Unauthorized(f"{source} role is not one of {sorted(ROLES)}")
    return value


def caller_from_claims(claims: Mapping[str, Any], find_user: UserLookup) -> Caller:
    """Who is calling: the id claim as an ObjectId of an existing user, and that user's role in ``users``.

    A role claim is only a cross-check: when present it must be the role ``users`` holds.
    """
    raw_id = claims.get("id") or claims.get("sub") or claims.get("_id")
    try:
        user_id = parse.object_id(raw_id, "id")
    except parse.Invalid:
        raise Unauthorized("token has no ObjectId user id") from None
    user = find_user(user_id)
    if user is None:
        raise Unauthorized("token's user is not in users")
    role = _role(user.get("role"), "users")
    claimed = claims.get("role")
    if claimed is not None and claimed != role:
        raise Unauthorized("token's role claim is not the user's role in users")
    return Caller(id=user_id, role=role)
