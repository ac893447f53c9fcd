"""The ingress, served as ``python -m ingress`` serves it, with a MongoDB client that waits longer.

``python bench/child/patient_ingress.py`` with the ingress's environment runs
``ingress.__main__.main`` with ``create_app`` given a database handle whose timeouts are two
minutes instead of two seconds. The benchmark's MongoDB is the stand-in, which computes a query's
whole answer before its first batch (several seconds for 50,000 payments) and answers nothing
else meanwhile: the ingress's own client would take that pause for a dead server and drop the
export. Everything else (routes, middleware, the server and its limits) is the ingress's.
"""

from __future__ import annotations

import sys
from typing import Any

#: Milliseconds the client waits for the stand-in (server selection, connect, heartbeats).
PATIENCE_MS = 120_000


def main() -> int:
    import ingress.__main__ as ingress_main
    from adapters.mongo import connect
    from ingress.composition import create_app

    def patient_app(settings: Any) -> Any:
        return create_app(settings, db=connect(settings.mongodb_uri, settings.mongodb_db, timeout_ms=PATIENCE_MS))

    ingress_main.create_app = patient_app  # type: ignore[attr-defined, assignment]
    return int(ingress_main.main())


if __name__ == "__main__":
    sys.exit(main())
