"""A worker process's broker: the shared one (``adapters.queue.Broker``) that also consumes, through
``workers.consumer.Consumer``, with the state its consumers share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from dramatiq.middleware import Middleware

from adapters.compat import dramatiq as internals
from adapters.queue import EMAILS_QUEUE, Broker, Refused, build_broker
from adapters.queue_health import WORKER_ID_PREFIX
from adapters.settings import Settings
from adapters.signing import Signer
from workers.consumer import Consumer

#: Queues whose consumer yields while the process has other work (see ``Consumer``).
YIELDING = frozenset({EMAILS_QUEUE})


class WorkerBroker(Broker):
    """The broker of a worker process: its consumers survive Redis faults, let the ``yielding``
    queues wait while others have work and admit only signed messages (see ``Consumer``)."""

    def __init__(self, signer: Signer, yielding: frozenset[str] = YIELDING, **options: Any) -> None:
        super().__init__(signer, **options)
        # Heartbeats then tell worker processes from enqueuers (``payments-ops doctor``).
        self.broker_id = f"{WORKER_ID_PREFIX}{uuid4()}"
        #: Told of each message a consumer refused (the worker records it in ``job_failures``).
        self.on_refused: Callable[[Refused], None] = lambda refused: None
        self._fetch = internals.fetcher(self)
        #: Queues whose consumer could not give its delayed messages back (see ``Consumer``).
        self.stranded: set[str] = set()
        self.yielding = yielding
        #: The live consumer of each queue in this process (each holds that queue's messages).
        self.consumers: dict[str, Consumer] = {}
        #: Each queue's ``Consumer.handed_out``, kept across its consumer's restarts.
        self.handed_out: dict[str, set[str]] = {}
        #: ``time.monotonic()`` until which the yielding queues keep yielding (see ``Consumer``).
        self.busy_until = 0.0

    @property
    def consumer_class(self) -> type[Consumer]:
        return Consumer

    @property
    def queue_actors(self) -> dict[str, frozenset[str]]:
        """The names of the actors declared on each queue: the only ones its messages may name."""
        names: dict[str, set[str]] = {}
        for actor in self.actors.values():
            names.setdefault(actor.queue_name, set()).add(actor.actor_name)
        return {queue: frozenset(actors) for queue, actors in names.items()}

    def fetch(self, queue_name: str, count: int) -> list[tuple[str, bytes]]:
        """Take up to ``count`` messages of ``queue_name`` into this worker's ack set: (Redis id, data) each."""
        return self._fetch(queue_name, count)


def build_worker_broker(settings: Settings, middleware: Sequence[Middleware] = ()) -> WorkerBroker:
    """``build_broker`` for a worker process: the same broker, consuming through ``Consumer``."""
    broker = build_broker(settings, middleware, WorkerBroker)
    assert isinstance(broker, WorkerBroker)
    return broker
