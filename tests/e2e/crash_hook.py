"""Imported into the worker processes by the crash test (``python -m workers tests.e2e.crash_hook``).

When the file ``crash-before-outbox`` exists in the worker's working directory, the first
notification write SIGKILLs the worker process: the enrollment is active, the emails are not
yet in the outbox. The marker is removed first, so the restarted worker runs normally.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from adapters.outbox import MongoOutbox

MARKER = Path("crash-before-outbox")
_notify = MongoOutbox.notify


def _crashing_notify(self: MongoOutbox, *args: Any, **kwargs: Any) -> None:
    if MARKER.exists():
        MARKER.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    _notify(self, *args, **kwargs)


MongoOutbox.notify = _crashing_notify  # type: ignore[method-assign]
