"""Exports of payments: the caller's own, or (admins) every one created in a period, as CSV or JSON text.

Each export is a generator of text chunks over the port's cursor: every ``next()`` reads at most
``rows`` payments and returns them formatted, so a caller that sends each chunk before asking for
the next holds one chunk at a time, however many payments there are. Closing the generator
closes the cursor (its ``finally``), also when the client goes away half way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from domain.exports import csv_text
from usecases.ports import PaymentExports, Period

__all__ = ["ROWS", "Doc", "PaymentExports", "Period", "csv_chunks", "json_chunks"]

Doc = Mapping[str, Any]
#: Payments per chunk: a few hundred KB of text, few enough round trips to the thread pool.
ROWS = 500


def csv_chunks(
    docs: Iterator[Doc], columns: Sequence[str], row: Callable[[Doc], list[str]], rows: int = ROWS
) -> Generator[str, None, None]:
    """The header line, then ``rows`` payments per chunk."""
    try:
        yield csv_text([list(columns)])
        while batch := list(islice(docs, rows)):
            yield csv_text(row(doc) for doc in batch)
    finally:
        _close(docs)


def json_chunks(docs: Iterator[Doc], item: Callable[[Doc], Any], rows: int = ROWS) -> Generator[str, None, None]:
    """``{"items": [...]}`` in pieces: the opening, ``rows`` items per chunk, the closing."""
    try:
        yield '{"items":['
        separator = ""
        while batch := list(islice(docs, rows)):
            yield separator + ",".join(_json(item(doc)) for doc in batch)
            separator = ","
        yield "]}"
    finally:
        _close(docs)


def _json(value: Any) -> str:
    # ensure_ascii=False: names in any script stay readable; the answer is UTF-8.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _close(docs: Iterator[Doc]) -> None:
    close = getattr(docs, "close", None)
    if callable(close):
        close()
