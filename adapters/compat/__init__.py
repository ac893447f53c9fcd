"""Each library's private internals, behind one module per library, with the check that they still hold.

Nothing else in the project reaches past a library's public API: on an upgrade of Dramatiq or
redis-py, ``dramatiq.py`` or ``redis.py`` here is the one file to read, and its ``check_*`` (run at
a worker's and the ingress's boot) says at once what changed.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.cache
def source_of(obj: Any) -> str:
    """Source of a library object the checks read; cached by the object, so a replaced attribute is read afresh."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""
