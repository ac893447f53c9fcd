"""Module the Dramatiq CLI imports in every worker process (``dramatiq workers.entry``).

Dramatiq needs the broker and actors to exist once this module is imported, so the process's
composition root (``workers.composition``) runs here; ``python -m workers`` has already validated the settings.
"""

from adapters.logs import configure_logging
from adapters.settings import load_settings
from workers.composition import build_worker

settings = load_settings()
configure_logging(settings.log_level)
broker = build_worker(settings).broker
