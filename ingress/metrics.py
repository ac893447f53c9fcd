"""``GET /metrics``: the Prometheus text of ``adapters.metrics`` and the queue depths (docs/api.md#metrics).

Not under the ops token: open when ``METRICS_TOKEN`` is unset, else ``Authorization: Bearer
$METRICS_TOKEN`` (compared in constant time) or 401 in the API's error shape.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from adapters import metrics
from ingress.errors import error


class MetricsRoute:
    def __init__(self, token: str | None, depths: Callable[[], metrics.Depths], *extra: metrics.Collector) -> None:
        """``depths``: each queue's ready, delayed, in-flight and dead counts, read at each scrape;
        ``extra``: more collectors read at each scrape (the success metrics' gauges, worker liveness,
        oldest message ages)."""
        self.token = token
        self.depths = metrics.QueueDepths(depths)
        self.extra = extra

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def handle(self, request: Request) -> Response:
        if not self.authorized(request):
            return error(401, "unauthorized", "the metrics token is required", headers={"WWW-Authenticate": "Bearer"})
        # Reading the multiprocess files and Redis blocks: a thread keeps the event loop serving.
        body, content_type = await run_in_threadpool(metrics.exposition, self.depths, *self.extra)
        return Response(body, media_type=content_type)
