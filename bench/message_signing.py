"""What the queue's HMAC costs per event, next to what enqueueing already spends encoding it.

    .venv/bin/python bench/message_signing.py

Prints microseconds per operation for a 3 KB signed ``payment_intent.succeeded`` message: Dramatiq's
own encoding (the baseline, measured in the same run), signing, and verifying, and their ratio.
"""

from __future__ import annotations

import timeit
from typing import Any

from dramatiq.brokers.stub import StubBroker

from adapters.queue import SignMessages, event_message, refusal
from devstack import events

KEY = b"k" * 32
RUNS = 20_000


def per_call_us(fn: Any) -> float:
    return min(timeit.repeat(fn, number=RUNS, repeat=5)) / RUNS * 1e6


def main() -> None:
    intent = events.payment_intent("payment_intent.succeeded", "pi_bench", 49900, "INR", {"source": events.SOURCE})
    message = event_message(events.event("payment_intent.succeeded", intent))
    broker, signer = StubBroker(), SignMessages(KEY)
    signer.before_enqueue(broker, message, None)
    encode = per_call_us(message.encode)
    sign = per_call_us(lambda: signer.before_enqueue(broker, message, None))
    verify = per_call_us(lambda: refusal(KEY, message))
    print(f"message size: {len(message.encode())} bytes")
    print(f"encode (baseline): {encode:7.1f} µs")
    print(f"sign:              {sign:7.1f} µs  ({sign / encode:.2f}x encode)")
    print(f"verify:            {verify:7.1f} µs  ({verify / encode:.2f}x encode)")


if __name__ == "__main__":
    main()
