"""Open-loop load: requests sent on a fixed schedule, whether or not earlier ones were answered.

Debian has no ``wrk2``, and httpx tops out near 400 requests/s here, so this posts over raw
keep-alive connections (a new one whenever all are busy) on asyncio, uvloop when installed.
Latency runs from each request's *scheduled* time to the end of its answer, so a stalled server
is charged for the requests it kept waiting (no coordinated omission). ``lag`` (sent minus
scheduled) and the generator's own CPU show whether the generator kept its schedule; the
benchmark also runs it against the bare app, which bounds what the generator adds.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.wrk import WEBHOOK_PATH
from devstack import aio

#: Connections kept at most; a request finding all busy and this many open waits for one.
MAX_CONNECTIONS = 256
#: Seconds an idle connection is reused for: under uvicorn's keep-alive timeout (5 s), so a request
#: is never written to a connection the server is closing.
IDLE_REUSE = 2.0


@dataclass
class OpenLoopResult:
    latencies: list[float] = field(default_factory=list)  # seconds, scheduled → answered
    lags: list[float] = field(default_factory=list)  # seconds, scheduled → written
    sent_at: list[float] = field(default_factory=list)  # wall clock when written, per request
    errors: Counter[str] = field(default_factory=Counter)  # by HTTP status or exception
    cpu: float = 0.0  # the generator's CPU seconds
    seconds: float = 0.0  # from the first scheduled send to the last answer


def _request(host: str, port: int, body: bytes, signature: str) -> bytes:
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Stripe-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer (Content-Length framed, as uvicorn sends JSON); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _send_all(host: str, port: int, signed: list[tuple[bytes, str]], rate: float) -> OpenLoopResult:
    result = OpenLoopResult(sent_at=[0.0] * len(signed))
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    payloads = [_request(host, port, body, signature) for body, signature in signed]

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while idle:
            reader, writer, since = idle.pop()
            if time.perf_counter() - since < IDLE_REUSE:
                return reader, writer
            writer.close()  # the server may be closing it (uvicorn: after 5 s idle)
        return await asyncio.open_connection(host, port)

    async def one(i: int, scheduled: float) -> None:
        async with slots:
            conn = None
            try:
                conn = await connection()
                result.lags.append(time.perf_counter() - scheduled)
                result.sent_at[i] = time.time()
                conn[1].write(payloads[i])
                status = await _answer(conn[0])
                result.latencies.append(time.perf_counter() - scheduled)
                if status != 200:
                    result.errors[f"HTTP {status}"] += 1
                idle.append((*conn, time.perf_counter()))
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                result.errors[type(error).__name__] += 1
                if conn is not None:
                    conn[1].close()

    # Timers run on the loop's clock (uvloop's has 1 ms steps); times are taken with perf_counter.
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(len(payloads)):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    for _, writer, _ in idle:
        writer.close()
    return result


def open_loop(host: str, port: int, signed: list[tuple[bytes, str]], rate: float) -> OpenLoopResult:
    """POST every signed body to the webhook path at ``rate`` per second, on schedule."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = aio.run(_send_all(host, port, signed, rate))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result
