"""Where ``payments-ops`` finds the stack: the services' own configuration, else the running local stack.

The services' variables (``REDIS_URL``, ``MONGODB_URI``, …, or a ``.env``) win. Only when none of
them is set and ``var/stack.json`` exists does the command use the local stack ``make run``
started (with its generated secrets from ``var/secrets.json``); there is never a guessed default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adapters.settings import ConfigError, Settings, load_settings, read_dotenv

#: The key the local stack's Stripe stand-in is called with (localstripe accepts any): ``make run``
#: gives it to its ingress and worker, so ``payments-ops`` acting on that stack uses it too.
LOCAL_STRIPE_KEY = "sk_test_localstripe"
#: Any of these set means the operator named a stack.
SERVICE_VARIABLES = ("REDIS_URL", "MONGODB_URI", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "JWT_SECRET")


def local_stack_environ(var: Path) -> dict[str, str]:
    """The services' variables for the stack ``make run`` is running from ``var/``."""
    stack = json.loads((var / "stack.json").read_text())
    secrets = json.loads((var / "secrets.json").read_text())
    return {
        "APP_ENV": "development",
        "REDIS_URL": stack["redis"],
        "MONGODB_URI": stack["mongodb"],
        "MONGODB_DB": stack["mongodb_db"],
        "STRIPE_SECRET_KEY": LOCAL_STRIPE_KEY,
        "STRIPE_API_BASE": stack["stripe_api"],
        "STRIPE_WEBHOOK_SECRET": stack["webhook_secret"],
        "JWT_SECRET": secrets["jwt_secret"],
        "PAYMENTS_OPS_INGRESS": stack["ingress"],
        "SMTP_URL": stack["smtp"],  # what the stack's workers send with (payments-ops doctor logs in there)
    }


def ops_settings(var: Path = Path("var")) -> tuple[Settings, str | None]:
    """The settings to act with, and the ingress URL when known; ``ConfigError`` naming what is missing."""
    environ = {**read_dotenv(Path(".env")), **os.environ}
    if not any(environ.get(name) for name in SERVICE_VARIABLES):
        if not (var / "stack.json").is_file():
            raise ConfigError(
                "no configuration: set the services' variables (REDIS_URL, MONGODB_URI, …) or start `make run`"
            )
        environ = {**environ, **local_stack_environ(var)}
    return load_settings(environ, dotenv=None), environ.get("PAYMENTS_OPS_INGRESS")
