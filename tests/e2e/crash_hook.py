"""Imported into the worker processes by the crash test (``python -m workers tests.e2e.crash_hook``).

When the file ``crash-before-outbox`` exists in the worker's working directory, the first
notification write SIGKILLs the worker process: the enrollment is active, the emails are not
yet in the outbox. When ``crash-after-refund`` exists, the first refund Stripe makes SIGKILLs it
before the refund is recorded. Each marker is removed first, so the restarted worker runs normally.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from adapters.outbox import MongoOutbox
from adapters.stripe_gateway import StripeGateway

MARKER = Path("crash-before-outbox")
REFUND_MARKER = Path("crash-after-refund")
_notify_all = MongoOutbox.notify_all  # every notification write goes through it
_create_refund = StripeGateway.create_refund


def _die_if(marker: Path) -> None:
    if marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)


def _crashing_notify_all(self: MongoOutbox, *args: Any, **kwargs: Any) -> None:
    _die_if(MARKER)
    _notify_all(self, *args, **kwargs)


def _crashing_create_refund(self: StripeGateway, *args: Any, **kwargs: Any) -> Any:
    refund = _create_refund(self, *args, **kwargs)
    _die_if(REFUND_MARKER)  # Stripe made the refund; nothing of it is recorded yet
    return refund


MongoOutbox.notify_all = _crashing_notify_all  # type: ignore[method-assign]
StripeGateway.create_refund = _crashing_create_refund  # type: ignore[method-assign]
