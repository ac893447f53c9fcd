"""The use cases' dependencies on MongoDB, Redis and Stripe: ``Deps`` (the event handlers, refunds,
checkout's core) and ``OpsDeps`` (the ops service), each from one database and one broker.

Shared by the composition roots (``ingress.composition``, ``workers.composition``,
``payments_ops.composition``), which each call them once; what only one process kind needs is
built in its own root.
"""

from __future__ import annotations

import functools

from pymongo.database import Database

from adapters.audit import MongoAudit
from adapters.dead_workers import attempt_over
from adapters.disputes import MongoDisputes
from adapters.enrollments import MongoEnrollments
from adapters.failures import FailureRecords
from adapters.inbox import MongoInbox
from adapters.mongo import Doc, MongoPayments
from adapters.ops_jobs import MongoOpsJobs
from adapters.outbox import MongoOutbox
from adapters.queue import Broker, BrokerJobs
from adapters.queue_admin import RedisQueueAdmin
from adapters.refunds import MongoRefunds
from adapters.settings import Settings
from adapters.stripe_gateway import StripeGateway, build_client
from usecases.ports import Deps, Links, OpsDeps


def build_deps(
    settings: Settings,
    db: Database[Doc],
    broker: Broker,
    stripe: StripeGateway | None = None,
    outbox: MongoOutbox | None = None,
) -> Deps:
    return Deps(
        payments=MongoPayments(db),
        inbox=MongoInbox(db),
        stripe=stripe or StripeGateway(build_client(settings)),
        enrollments=MongoEnrollments(db),
        outbox=outbox or MongoOutbox(db, broker),
        links=Links(app_base_url=settings.app_base_url, ops_email=settings.ops_email),
        refunds=MongoRefunds(db, functools.partial(attempt_over, broker)),
        jobs=BrokerJobs(broker),
        disputes=MongoDisputes(db),
    )


def build_ops(settings: Settings, db: Database[Doc], broker: Broker) -> OpsDeps:
    """The ops service's adapters: failure records, Dramatiq's queues, the audit, the inbox."""
    return OpsDeps(
        failures=FailureRecords(db),
        queues=RedisQueueAdmin(broker),
        audit=MongoAudit(db),
        events=MongoInbox(db),
        jobs=BrokerJobs(broker),
        runs=MongoOpsJobs(db),
    )
