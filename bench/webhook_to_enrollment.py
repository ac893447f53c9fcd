"""Benchmark: signed payment_intent.succeeded webhook → enrollment active, on the local stack.

    .venv/bin/python bench/webhook_to_enrollment.py [--rate 200] [--seconds 20] [--burst 2000]

Prints, all measured in this run on this machine:
  1. the bare-Starlette baseline: a one-route app under uvicorn, at the same fixed rate and flat out;
  2. the ingress's webhook route alone (verify + enqueue), flat out, as a ratio of the baseline;
  3. end to end at a fixed rate: p50/p99 from the POST to the enrollment's ``updatedAt``;
  4. the highest sustained end-to-end rate (a burst, drained), and the CPU each process used,
     which names the process that bounds it.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.payloads import seed, succeeded
from bench.procstat import cpu_seconds
from bench.stats import pct
from devstack.procs import Child, free_port, python_module
from devstack.stack import Stack
from payments_ops import events

TUNING = {"WORKER_PROCESSES": "2", "WORKER_THREADS": "8", "LOG_LEVEL": "WARNING", "RETRY_MIN_BACKOFF_MS": "200"}
BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hook(request):
    await request.body()
    return JSONResponse({"received": True})

app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
"""


def group_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds per part (every process of its group), and of this script as ``client``."""
    usage: dict[str, float] = {"client": cpu_seconds(os.getpid(), waited_children=True)}
    groups = {child.pid: name for name, child in stack.children.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pgid = os.getpgid(int(entry.name))
            if pgid in groups:
                usage[groups[pgid]] = usage.get(groups[pgid], 0.0) + cpu_seconds(int(entry.name), waited_children=True)
        except (OSError, IndexError):
            continue
    return usage


async def post_all(url: str, bodies: list[tuple[bytes, dict[str, str]]], rate: float | None) -> list[float]:
    """POST every body (at ``rate`` per second, or flat out with 32 in flight); return the send times."""
    sent = [0.0] * len(bodies)
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:

        async def one(i: int) -> None:
            async with limit:
                sent[i] = time.time()
                response = await client.post(url, content=bodies[i][0], headers=bodies[i][1])
                response.raise_for_status()

        start, tasks = time.monotonic(), []
        for i in range(len(bodies)):
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return sent


def signed_bodies(payments: list[dict[str, Any]], secret: str) -> list[tuple[bytes, dict[str, str]]]:
    import json

    out = []
    for payment in payments:
        body = json.dumps(succeeded(payment)).encode()
        out.append((body, {"Content-Type": "application/json", "Stripe-Signature": events.sign(body, secret)}))
    return out


def latencies(db: Any, payments: list[dict[str, Any]], sent: list[float], timeout: float) -> list[float]:
    """Seconds from each POST to its enrollment becoming active (waits up to ``timeout``)."""
    customers = [p["customerId"] for p in payments]
    deadline = time.time() + timeout
    while db.enrollments.count_documents({"customerId": {"$in": customers}}) < len(customers):
        if time.time() > deadline:
            break
        time.sleep(0.5)
    done = {
        e["customerId"]: e["updatedAt"].timestamp() for e in db.enrollments.find({"customerId": {"$in": customers}})
    }
    return [done[p["customerId"]] - s for p, s in zip(payments, sent, strict=True) if p["customerId"] in done]


def bare_baseline(rate: float, count: int, log_dir: Path) -> tuple[float, float, float]:
    """Bare Starlette: (p50 ms, p99 ms) at ``rate``, and requests/s flat out."""
    app_file = log_dir / "bare_app.py"
    app_file.write_text(BARE_APP)
    port = free_port()
    argv = python_module(
        "uvicorn", "bare_app:app", "--port", str(port), "--log-level", "warning", "--app-dir", str(log_dir)
    )
    child = Child("bare", argv, log_dir).start()
    try:
        child.wait_tcp("127.0.0.1", port)
        url = f"http://127.0.0.1:{port}/hook"
        bodies = [(b'{"id": "evt_x"}', {"Content-Type": "application/json"})] * count
        asyncio.run(post_all(url, bodies[:200], None))  # warm up
        t0 = time.time()
        asyncio.run(post_all(url, bodies, None))
        flat = count / (time.time() - t0)
        fixed = timed_requests(url, bodies[: int(rate * 5)], rate)
        return pct(fixed, 50) * 1000, pct(fixed, 99) * 1000, flat
    finally:
        child.stop()


def timed_requests(url: str, bodies: list[tuple[bytes, dict[str, str]]], rate: float) -> list[float]:
    """Request latencies at a fixed rate (one request per slot, sequential within a slot)."""
    out: list[float] = []

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            start = time.monotonic()

            async def one(i: int) -> None:
                t = time.monotonic()
                await client.post(url, content=bodies[i][0], headers=bodies[i][1])
                out.append(time.monotonic() - t)

            tasks = []
            for i in range(len(bodies)):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)

    asyncio.run(run())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bench-"))
    print(f"machine: {os.cpu_count()} cores; logs in {var}")

    p50, p99, flat = bare_baseline(args.rate, args.burst, var)
    print(f"bare Starlette:      p50 {p50:.1f} ms, p99 {p99:.1f} ms at {args.rate:.0f}/s; {flat:.0f} req/s flat out")

    stack = Stack(var / "stack", {"APP_ENV": "test", "MONGODB_DB": "bench"}, ingress_port=free_port(), overrides=TUNING)
    stack.start()
    client: MongoClient[dict[str, Any]] = MongoClient(stack.urls["mongo"], tz_aware=True)
    db = client["bench"]
    url = stack.urls["ingress"] + "/api/webhooks/stripe"
    try:
        fixed_count = int(args.rate * args.seconds)
        payments = seed(db, fixed_count + args.burst)
        fixed, burst = payments[:fixed_count], payments[fixed_count:]

        warm = fixed[: min(1000, len(fixed) // 2)]
        hook_only = timed_requests(url, signed_bodies(warm, stack.webhook_secret), args.rate)
        print(
            f"webhook route only:  p50 {pct(hook_only, 50) * 1000:.1f} ms, p99 {pct(hook_only, 99) * 1000:.1f} ms "
            f"at {args.rate:.0f}/s (bare x{pct(hook_only, 50) * 1000 / p50:.2f} at p50)"
        )
        latencies(db, warm, [0.0] * len(warm), 120)  # let the worker drain before measuring end to end

        rest = fixed[len(warm) :]
        sent = asyncio.run(post_all(url, signed_bodies(rest, stack.webhook_secret), args.rate))
        lat = latencies(db, rest, sent, 120)
        print(
            f"end to end at {args.rate:.0f}/s for {len(rest) / args.rate:.0f} s: {len(lat)}/{len(rest)} active, "
            f"p50 {pct(lat, 50) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms"
        )

        cpu0, t0 = group_cpu(stack), time.time()
        sent = asyncio.run(post_all(url, signed_bodies(burst, stack.webhook_secret), None))
        lat = latencies(db, burst, sent, 300)
        elapsed = max(s + v for s, v in zip(sent, lat, strict=False)) - min(sent)
        cpu1 = group_cpu(stack)
        rate = len(lat) / elapsed
        print(f"highest sustained:   {rate:.0f} events/s end to end ({len(lat)} events drained in {elapsed:.1f} s)")
        wall = time.time() - t0
        shares = {name: (cpu1.get(name, 0) - cpu0.get(name, 0)) / wall for name in cpu1}
        for name, share in sorted(shares.items(), key=lambda kv: -kv[1]):
            print(f"  cpu {name:8s} {share * 100:5.0f}% of one core")
        bound = max(shares, key=lambda k: shares[k])
        notes = {
            "mongo": " (the MongoDB stand-in: one command at a time, in Python)",
            "client": " (the load generator)",
        }
        print(f"bound by: {bound}{notes.get(bound, '')}")
    finally:
        client.close()
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
