"""``GET /api/webhooks/health``: can this process reach Redis and MongoDB right now?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dramatiq.brokers.redis import RedisBroker
from pymongo.database import Database
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def _probe(check: Callable[[], Any]) -> str:
    try:
        await run_in_threadpool(check)
        return "ok"
    except Exception:
        return "down"


class Health:
    def __init__(self, broker: RedisBroker, db: Database[Any]) -> None:
        self.broker = broker
        self.db = db

    async def handle(self, request: Request) -> Response:
        parts = {
            "redis": await _probe(self.broker.client.ping),
            "mongo": await _probe(lambda: self.db.command("ping")),
        }
        healthy = all(v == "ok" for v in parts.values())
        return JSONResponse({"status": "ok" if healthy else "degraded", **parts}, status_code=200 if healthy else 503)
