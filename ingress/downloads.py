"""Answers the browser saves as a file: CSV or JSON, named ``<kind>-YYYYMMDD.<format>``, streamed when long.

``streamed`` sends a use case's text chunks as they come: each ``next()`` (which reads MongoDB) runs
in the caller's thread pool, one chunk at a time, so the ingress holds one chunk per download
whatever its length, and no thread while the client is slow to read. The chunk generator is
closed (so is its cursor) when the download ends, fails or the client goes away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.responses import Response, StreamingResponse

from domain.exports import csv_text, filename
from ingress import parse

#: Runs a blocking call off the event loop (``PaymentRoutes.blocking``).
Blocking = Callable[..., Awaitable[Any]]

FORMATS = ("csv", "json")
#: Starlette adds ``; charset=utf-8`` to ``text/`` types.
MEDIA = {"csv": "text/csv", "json": "application/json"}


def export_format(params: Mapping[str, str], default: str = "csv") -> str:
    return parse.choice(params, "format", FORMATS) or default


def attachment(kind: str, fmt: str) -> dict[str, str]:
    """Save as ``<kind>-YYYYMMDD.<fmt>`` (today, UTC); never kept by a cache (it is someone's money)."""
    name = filename(kind, datetime.now(UTC).date(), fmt)
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def csv_file(kind: str, rows: Iterable[Sequence[str]]) -> Response:
    """A short CSV, whole (the statistics: a row per month and currency)."""
    return Response(csv_text(rows), media_type=MEDIA["csv"], headers=attachment(kind, "csv"))


def streamed(blocking: Blocking, chunks: Generator[str, None, None], kind: str, fmt: str) -> StreamingResponse:
    return StreamingResponse(_pulled(blocking, chunks), media_type=MEDIA[fmt], headers=attachment(kind, fmt))


async def _pulled(blocking: Blocking, chunks: Generator[str, None, None]) -> AsyncIterator[bytes]:
    try:
        while (chunk := await blocking(next, chunks, None)) is not None:
            yield chunk.encode()
    finally:
        # Shielded: a client gone away cancels the download, and its cursor must still be closed.
        with anyio.CancelScope(shield=True):
            await blocking(chunks.close)
