"""``python -m ingress``: check the configuration, then serve the app with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from adapters.logs import configure_logging
from adapters.settings import load_or_exit
from ingress.app import create_app


def main() -> int:
    settings = load_or_exit()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
