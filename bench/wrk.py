"""Closed-loop load with Debian's ``wrk``: every connection posts the next signed body as soon as the
last one was answered.

The requests are prepared by Python (bodies signed for now) in a file, one ``signature<TAB>body``
per line; the Lua script below turns each line into a ready request once per wrk thread, so each
request costs wrk a table lookup, and cycles through them (threads start at different lines).
``done`` prints the summary as one JSON line, read back here.
"""

from __future__ import annotations

import json
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

WEBHOOK_PATH = "/api/webhooks/stripe"

SCRIPT = r"""
local requests, counter = {}, 0

function setup(thread)
  setup_count = (setup_count or 0) + 1
  thread:set("id", setup_count - 1)
end

function init(args)
  -- args: requests file, path, number of threads
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", args[2],
      {["Content-Type"] = "application/json", ["Stripe-Signature"] = signature}, body)
  end
  counter = id * math.floor(#requests / tonumber(args[3]))
end

function request()
  counter = counter + 1
  return requests[counter % #requests + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # answers other than 2xx/3xx, socket errors and timeouts
    p50_ms: float
    p99_ms: float
    #: CPU seconds wrk itself used (it shares the cores with what it measures).
    wrk_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def write_requests(path: Path, signed: list[tuple[bytes, str]]) -> Path:
    """The requests file: one ``signature<TAB>body`` line each (JSON bodies hold no raw tab or newline)."""
    with path.open("wb") as out:
        for body, signature in signed:
            out.write(signature.encode() + b"\t" + body + b"\n")
    return path


def run_wrk(url: str, requests_file: Path, seconds: float, threads: int, connections: int) -> WrkResult:
    """One wrk run against ``url`` (scheme, host and port) posting to the webhook path."""
    script = requests_file.with_suffix(".lua")
    script.write_text(SCRIPT)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
            "-s", str(script), url, "--", str(requests_file), WEBHOOK_PATH, str(threads)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    summary = json.loads(lines[-1][len("BENCH ") :])
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        errors=summary["status_errors"] + summary["socket_errors"] + summary["timeouts"],
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        wrk_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
