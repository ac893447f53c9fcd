"""Real adapters wired to the use cases. Each process's bootstrap (worker, ingress) calls these once."""

from __future__ import annotations

import functools

from pymongo.database import Database

from adapters.audit import MongoAudit
from adapters.checkout import MongoCatalog, MongoCheckout, ensure_checkout_indexes
from adapters.dead_workers import attempt_over
from adapters.disputes import MongoDisputes
from adapters.enrollments import MongoEnrollments, ensure_enrollment_indexes
from adapters.failures import FailureRecords
from adapters.inbox import MongoInbox
from adapters.mongo import Doc, MongoPayments, ensure_indexes
from adapters.ops_jobs import MongoOpsJobs, ensure_ops_job_indexes
from adapters.ops_sessions import ensure_ops_session_indexes
from adapters.outbox import MongoOutbox, ensure_outbox_indexes
from adapters.queue import Broker, BrokerJobs
from adapters.queue_admin import RedisQueueAdmin
from adapters.refunds import MongoRefunds, ensure_refund_indexes
from adapters.settings import Settings
from adapters.statistics import ensure_statistics_indexes
from adapters.stripe_gateway import StripeGateway, build_client
from usecases.ports import CheckoutDeps, Deps, Links, OpsDeps


def ensure_all_indexes(db: Database[Doc]) -> None:
    """Every index this service relies on; idempotent, run at start-up."""
    ensure_indexes(db)
    ensure_checkout_indexes(db)
    ensure_enrollment_indexes(db)
    ensure_outbox_indexes(db)
    ensure_refund_indexes(db)
    ensure_statistics_indexes(db)
    ensure_ops_session_indexes(db)
    ensure_ops_job_indexes(db)


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


def build_checkout(db: Database[Doc], deps: Deps, stripe: StripeGateway) -> CheckoutDeps:
    return CheckoutDeps(catalog=MongoCatalog(db), checkout=MongoCheckout(db), intents=stripe, core=deps)
