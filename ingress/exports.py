"""Payment exports: the caller's own (the MERN app's PaymentHistory "Export") and, for admins, a period's.

- ``GET /api/payments/history/customer/export``: every payment of the caller (no paging), newest
  first, filtered like the history (``status``) and by ``from``/``to`` on ``createdAt``.
- ``GET /api/payments/export``: admins only; every payment created in ``from``/``to``, with who
  paid whom, refunds, disputes and reviews (``domain.exports.ADMIN_COLUMNS``).

``format=csv`` (the default; ``domain.exports`` makes the rows) or ``json`` (``{"items": [...]}``,
each item as the history shows it). Everything is checked before the first byte goes out, so a
bad parameter is still a 422 in the API's error shape; then the rows are streamed
(``ingress.downloads``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from adapters.serialize import payment_json, view_of
from domain.exports import ADMIN_COLUMNS, CUSTOMER_COLUMNS, admin_row, customer_row
from ingress import parse
from ingress.auth import Caller
from ingress.downloads import export_format, streamed
from ingress.payments import STATUSES, PaymentRoutes
from usecases.exports import Doc, PaymentExports, Period, csv_chunks, json_chunks


@dataclass
class ExportRoutes:
    #: For the caller, the rate limit and the thread pool the payment routes share.
    payments: PaymentRoutes
    exports: PaymentExports

    async def customer(self, request: Request) -> Response:
        caller = await self.payments.caller(request)
        params = request.query_params
        fmt = export_format(params)
        status = parse.choice(params, "status", STATUSES)
        period = Period(*parse.query_period(params))
        await self.payments.limit(caller, "export")
        docs = self.exports.of_customer(caller.id, status, period)  # lazy: read as the chunks are pulled
        chunks = _chunks(docs, fmt, caller, CUSTOMER_COLUMNS, customer_row)
        return streamed(self.payments.blocking, chunks, "payments", fmt)

    async def admin(self, request: Request) -> Response:
        caller = await self.payments.caller(request, "admin")
        params = request.query_params
        fmt = export_format(params)
        period = Period(*parse.query_period(params))
        await self.payments.limit(caller, "export")
        chunks = _chunks(self.exports.created_in(period), fmt, caller, ADMIN_COLUMNS, admin_row)
        return streamed(self.payments.blocking, chunks, "payments-all", fmt)


def _chunks(
    docs: Iterator[Doc], fmt: str, caller: Caller, columns: Sequence[str], row: Callable[[Doc], list[str]]
) -> Generator[str, None, None]:
    """CSV rows of ``columns``, or JSON items as the history shows them to ``caller``."""
    if fmt == "csv":
        return csv_chunks(docs, columns, row)
    return json_chunks(docs, lambda doc: payment_json(doc, view_of(doc, caller.id, caller.admin)))
