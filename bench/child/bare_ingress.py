"""The ceiling app, served the way ``python -m ingress`` serves the real one.

``python bench/child/bare_ingress.py`` with the ingress's environment runs ``ingress.__main__.main``
(settings, logging, its ``uvicorn.run`` call with every option) with ``create_app`` swapped for a
one-route app: POST ``/api/webhooks/stripe`` reads the body and answers JSON. Whatever server
settings the ingress has at the commit measured, the ceiling has too. The answer says
``"bare": true`` and the benchmark checks it, so a ``main`` that no longer builds its app through
``create_app`` is noticed rather than measured as the ceiling.
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"received": True, "bare": True})


def bare_app(settings: Any = None) -> Starlette:
    return Starlette(routes=[Route("/api/webhooks/stripe", hook, methods=["POST"])])


def main() -> int:
    import ingress.__main__ as ingress_main

    ingress_main.create_app = bare_app  # type: ignore[attr-defined, assignment]
    return int(ingress_main.main())


if __name__ == "__main__":
    sys.exit(main())
