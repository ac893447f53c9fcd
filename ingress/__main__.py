"""``python -m ingress``: check the configuration, then serve the app with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from adapters.logs import configure_logging
from adapters.settings import ConfigError, load_settings
from ingress.app import create_app


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
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
