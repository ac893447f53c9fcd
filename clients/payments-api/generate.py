"""The client's types, generated from the schema the app serves: ``openapi.json`` and ``src/schema.d.ts``.

    .venv/bin/python clients/payments-api/generate.py           # rewrite both
    .venv/bin/python clients/payments-api/generate.py --check   # exit 1, naming each one that differs

The app is built as the ingress builds it (``ingress.composition.create_app``) on an in-memory
database, with nothing reachable, and asked for ``GET /openapi.json`` through Starlette's
TestClient; that answer is ``openapi.json``, and openapi-typescript (the version pinned in
``package-lock.json``, installed with ``npm ci`` when needed) turns it into ``src/schema.d.ts``.
``tests/unit/test_payments_api_client.py`` runs the check and ``tsc --noEmit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parents[1]
SCHEMA_JSON = PACKAGE / "openapi.json"
SCHEMA_TS = PACKAGE / "src" / "schema.d.ts"

#: A configuration that loads, reaching nothing: the app is only asked for its schema.
ENV = {
    "APP_ENV": "development",
    "STRIPE_SECRET_KEY": "sk_test_schema",
    "STRIPE_WEBHOOK_SECRET": "whsec_schema",
    "JWT_SECRET": "schema",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "MONGODB_URI": "mongodb://127.0.0.1:1",
}


def served_schema() -> dict[str, Any]:
    """What ``GET /openapi.json`` answers."""
    import mongomock
    from starlette.testclient import TestClient

    from adapters.queue import build_broker
    from adapters.settings import load_settings
    from ingress.composition import create_app

    settings = load_settings(ENV, dotenv=None)
    broker = build_broker(settings)
    try:
        app = create_app(settings, broker=broker, db=mongomock.MongoClient().get_database("schema"))
        answer = TestClient(app).get("/openapi.json")
        answer.raise_for_status()
        schema: dict[str, Any] = answer.json()
    finally:
        broker.close()
    return schema


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def typescript_of(schema_file: Path) -> str:
    """openapi-typescript's output for ``schema_file``."""
    from devstack import node

    node.install(PACKAGE)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "schema.d.ts"
        node.run_tool(
            [node.tool("node"), node.bin_path("openapi-typescript", PACKAGE), str(schema_file), "-o", str(out)]
        )
        return out.read_text()


def generated() -> dict[Path, str]:
    """Each generated file and what it should hold."""
    text = schema_text(served_schema())
    with tempfile.TemporaryDirectory() as folder:
        dumped = Path(folder) / "openapi.json"
        dumped.write_text(text)
        types = typescript_of(dumped)
    return {SCHEMA_JSON: text, SCHEMA_TS: types}


def stale() -> list[str]:
    """The generated files that differ from what would be generated now (their paths from the checkout)."""
    return [
        str(path.relative_to(ROOT))
        for path, text in generated().items()
        if not path.is_file() or path.read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.check:
        out_of_date = stale()
        for name in out_of_date:
            print(f"{name} is out of date: run .venv/bin/python clients/payments-api/generate.py", file=sys.stderr)
        return 1 if out_of_date else 0
    for target, text in generated().items():
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
