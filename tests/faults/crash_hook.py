"""Imported into the worker processes by the stuck-claim test (``python -m workers tests.faults.crash_hook``).

When the file ``CRASH_WHILE_SENDING`` exists in the worker's working directory, the next email
send SIGKILLs the worker process: the notification is claimed (``sending``), nothing is sent
yet. The marker is removed first, so the restarted worker runs normally. Never imported by
the tests themselves: it patches the mailer of the process that imports it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from adapters.mailer import Mailer
from tests.faults import CRASH_WHILE_SENDING

MARKER = Path(CRASH_WHILE_SENDING)
_send = Mailer.send


def _crashing_send(self: Mailer, *args: Any, **kwargs: Any) -> None:
    if MARKER.exists():
        MARKER.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    _send(self, *args, **kwargs)


Mailer.send = _crashing_send  # type: ignore[method-assign]
