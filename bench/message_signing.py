"""What the queue's HMAC costs per event, next to what enqueueing already spends encoding it.

    .venv/bin/python bench/message_signing.py

Prints microseconds per operation for a signed ``payment_intent.succeeded`` message of about 2 KB
(a 3 KB delivery as Stripe pretty-prints it): Dramatiq's own encoding (the baseline, measured in
the same run), the orjson encoding the webhook's enqueue uses, signing, verifying, and the stdlib
``json.dumps`` form the signature hashes (what signing cost before ``signed_form`` wrote the same
bytes with orjson), with their ratios to the baseline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import timeit
from typing import Any

from dramatiq.common import q_name

from adapters.async_queue import encode as fast_encode
from adapters.queue import STRIPE_EVENTS_ACTOR, STRIPE_EVENTS_QUEUE, event_message
from adapters.signing import SIGNATURE, Signer, refusal
from payments_ops import events

KEY = b"k" * 32
RUNS = 20_000


def per_call_us(fn: Any) -> float:
    return min(timeit.repeat(fn, number=RUNS, repeat=5)) / RUNS * 1e6


def legacy_form(message: Any) -> bytes:
    names = "".join(f"{len(n)}:{n}" for n in (q_name(message.queue_name), message.actor_name, message.message_id))
    signed = [list(message.args), message.kwargs]
    return names.encode() + json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def legacy_sign(message: Any) -> str:
    return hmac.new(KEY, legacy_form(message), hashlib.sha256).hexdigest()


def main() -> None:
    metadata = {"source": events.SOURCE, **{f"note_{i}": "x" * 40 for i in range(12)}}  # a 3 KB event, as Stripe's
    intent = events.payment_intent("payment_intent.succeeded", "pi_bench", 49900, "INR", metadata)
    message = event_message(events.event("payment_intent.succeeded", intent))
    signer = Signer((KEY,))
    signer.sign(message)
    assert legacy_sign(message) == message.options[SIGNATURE]
    encode = per_call_us(message.encode)

    def sign() -> None:
        del message.options[SIGNATURE]
        signer.sign(message)

    def admit() -> str | None:
        return refusal(signer, message, queue=STRIPE_EVENTS_QUEUE, redis_id=None, actors=(STRIPE_EVENTS_ACTOR,))

    rows = {
        "encode, orjson (webhook)": per_call_us(lambda: fast_encode(message)),
        "sign": per_call_us(sign),
        "verify (the worker's door)": per_call_us(admit),
        "sign, json.dumps (before)": per_call_us(lambda: legacy_sign(message)),
    }
    print(f"message size: {len(message.encode())} bytes")
    print(f"{'encode (baseline)':26} {encode:7.1f} µs")
    for name, us in rows.items():
        print(f"{name:26} {us:7.1f} µs  ({us / encode:.2f}x encode)")


if __name__ == "__main__":
    main()
