"""The queue's trust rule: a worker runs a message only if this project signed it where it was made.

Redis is not a trust boundary: anyone who can write to it can add, copy or change messages. So a
message is signed once, by the code that makes it from data it has verified (the ingress after
Stripe's signature, reconcile after Stripe's API, the use cases' own new messages), with an HMAC
under a key Redis never sees. A re-enqueue of an existing message (a delay, a retry, a requeue,
an ops replay) carries that signature as it is and is checked again when it is fetched; nothing
ever signs a message it did not make (``Signer.sign`` refuses one that is signed already).

The signature covers what decides what runs: the queue, the actor, the message id (the emails
actor claims in its name) and the arguments. The options are Dramatiq's bookkeeping and change
on every retry, so they are not signed; instead only the few listed in ``ALLOWED_OPTIONS`` may be
present at all. Those can only delay a message or change its retry count, never what it does:
options such as ``pipe_target``, ``on_failure``, ``max_retries`` or ``time_limit`` are refused.
See docs/queue-security.md for the Redis keys and what each may hold.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import orjson
from dramatiq import Message

from adapters.compat.dramatiq import q_name

#: The message option that carries the message's HMAC.
SIGNATURE = "signature"

#: Options a message may carry: the signature, and what Dramatiq and ``DurableRetries`` write on the
#: way (the Redis entry's id, a delay's due time, the retry count and time, the last traceback, the failures).
ALLOWED_OPTIONS = frozenset(
    {
        SIGNATURE,
        "redis_message_id",
        "eta",
        "retries",
        "requeue_timestamp",
        "traceback",
        "failed_attempts",
        "first_failed_at",
    }
)


class AlreadySigned(Exception):
    """A message that carries a signature was given to be signed: a re-enqueue must carry its own."""


@dataclass(frozen=True)
class Signer:
    """``QUEUE_SIGNING_KEY``'s keys: the first signs, every one verifies (so a key can be rotated
    without stranding the delayed retries and dead letters signed with the one before)."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a signer needs at least one key")

    def sign(self, message: Message[Any]) -> Message[Any]:
        """Sign ``message``, which this process has just made; returns it."""
        if SIGNATURE in message.options:
            raise AlreadySigned(f"message {message.message_id} is signed already")
        message.options[SIGNATURE] = signature(self.keys[0], message)
        return message

    def verifies(self, message: Message[Any]) -> bool:
        """Whether the message's signature is one of the keys' (False for anything malformed)."""
        given = message.options.get(SIGNATURE)
        if not isinstance(given, str) or len(given) != 64 or not given.isascii():
            return False
        try:
            wanted = [signature(key, message).encode() for key in self.keys]
        except Exception:  # arguments nothing of ours could have made (a lone surrogate, say)
            return False
        # Bytes, so a non-ASCII signature can never raise in compare_digest; every key is compared.
        matches = [hmac.compare_digest(given.encode(), one) for one in wanted]
        return any(matches)


def signature(key: bytes, message: Message[Any]) -> str:
    """HMAC-SHA256 over the queue (its delay queue counts as the same), actor, message id and arguments."""
    mac = _keyed(key).copy()
    # The names each length-prefixed (unambiguous, and kept out of ``signed_form``'s JSON, where
    # the ``e-`` of ``stripe-events`` would send every message down its slow path).
    names = (q_name(message.queue_name), message.actor_name, message.message_id)
    mac.update("".join(f"{len(name)}:{name}" for name in names).encode())
    mac.update(signed_form([list(message.args), message.kwargs]))
    return mac.hexdigest()


def refusal(
    signer: Signer, message: Message[Any], *, queue: str, redis_id: str | None, actors: Collection[str]
) -> str | None:
    """Why a worker must not run ``message``, fetched from ``queue`` as Redis entry ``redis_id``; None if it may.

    ``actors`` are the names of the project's actors on that queue. Every check is a plain
    comparison; any exception in one is itself a refusal.
    """
    try:
        return _refusal(signer, message, queue, redis_id, actors)
    except Exception as error:
        return f"message could not be checked: {type(error).__name__}"


def _refusal(
    signer: Signer, message: Message[Any], queue: str, redis_id: str | None, actors: Collection[str]
) -> str | None:
    if not isinstance(message.options, dict) or not isinstance(message.options.get(SIGNATURE), str):
        return "message carries no signature: not enqueued by this service"
    unknown = sorted(str(name) for name in message.options if name not in ALLOWED_OPTIONS)
    if unknown:
        return f"message carries options this service never sets: {', '.join(unknown)[:200]}"
    if redis_id is not None and message.options.get("redis_message_id") != redis_id:
        return "message names another Redis entry than the one it was stored as"
    if message.queue_name != queue:
        return "message names another queue than the one it was stored in"
    if message.actor_name not in actors:
        return "message names no actor of its queue"
    if not isinstance(message.message_id, str) or not isinstance(message.kwargs, dict):
        return "message id or arguments are malformed"
    if not signer.verifies(message):
        return "message signature does not verify: changed after it was enqueued, or another key"
    return None


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with ``key``, for ``signature`` to copy (keying anew per message costs more)."""
    return hmac.new(key, digestmod="sha256")


def signed_form(value: Any) -> bytes:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8.

    orjson writes these very bytes, faster (same key order, same escapes), except for floats
    under 1e-4, which it spells ``1e-7`` or ``0.00001`` where ``json`` writes ``1e-07`` or
    ``1e-05``: output holding ``e-`` or ``0.0000`` anywhere (in a string too) is made by ``json``
    itself, as is anything orjson refuses (integers past 64 bits, lone surrogates). So signer and
    verifier, old and new, always hash the same bytes (tests/unit/test_fast_paths.py).
    """
    try:
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if not _contains(fast, b"e-", b"-") and not _contains(fast, b"0.0000", b"."):
            return fast
    except TypeError:
        pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


#: Occurrences of the rare byte ``_contains`` checks one by one before it leaves the rest to ``in``.
_FEW = 16


def _contains(data: bytes, pattern: bytes, rare: bytes) -> bool:
    """``pattern in data``, found from the occurrences of ``rare`` (one byte of ``pattern``) in ``data``.

    ``in`` crawls through JSON text for ``e-`` or ``0.0000``: their other bytes (``e``, ``0``) are
    everywhere; JSON text holds few ``-`` and ``.``, which a one-byte search finds at memory
    speed. Past ``_FEW`` of them ``in`` is the cheaper search again (docs/performance.md).
    """
    offset = pattern.index(rare)
    at = data.find(rare, offset)
    for _ in range(_FEW):
        if at < 0:
            return False
        if data.startswith(pattern, at - offset):
            return True
        at = data.find(rare, at + 1)
    return pattern in data
