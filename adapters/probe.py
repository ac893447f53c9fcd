"""The doctor's probe message: ``payments-ops doctor`` enqueues it signed, a worker runs it and says so in Redis.

A worker runs only messages whose signature verifies under its ``QUEUE_SIGNING_KEY``, so an answer
proves the workers and the sender share the key. The probe has a queue of its own, so a backlog of
real work does not hide an answer; the answer is a Redis key that expires on its own.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from dramatiq import Message

#: The probe's queue and actor (declared by every worker: ``workers.doctor``).
PROBE_QUEUE = "doctor"
PROBE_ACTOR = "doctor_probe"
#: Seconds a probe's answer stays in Redis.
PROBE_TTL = 600
_PROBE_ID = re.compile(r"probe_[0-9a-f]{16}")


def new_probe_id() -> str:
    return f"probe_{secrets.token_hex(8)}"


def probe_key(probe_id: str) -> str:
    return f"payments:doctor:probe:{probe_id}"


def probe_message(probe_id: str) -> Message[Any]:
    return Message(
        queue_name=PROBE_QUEUE, actor_name=PROBE_ACTOR, args=(probe_id,), kwargs={}, options={}, message_id=probe_id
    )


def record_probe(client: Any, probe_id: str, worker: str) -> None:
    """What the probe actor does: note which worker ran it."""
    if not _PROBE_ID.fullmatch(probe_id):
        raise ValueError("not a probe id")
    client.set(probe_key(probe_id), worker, ex=PROBE_TTL)


def probe_answer(client: Any, probe_id: str) -> str | None:
    found = client.get(probe_key(probe_id))
    return found.decode() if isinstance(found, bytes) else found
