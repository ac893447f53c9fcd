"""Every index this service relies on, created by each process at start (the ingress, the worker)."""

from __future__ import annotations

from pymongo.database import Database

from adapters.checkout import ensure_checkout_indexes
from adapters.enrollments import ensure_enrollment_indexes
from adapters.ingress_counts import ensure_ingress_count_indexes
from adapters.mongo import Doc, ensure_indexes
from adapters.ops_jobs import ensure_ops_job_indexes
from adapters.ops_sessions import ensure_ops_session_indexes
from adapters.outbox import ensure_outbox_indexes
from adapters.refunds import ensure_refund_indexes
from adapters.statistics import ensure_statistics_indexes
from adapters.story import ensure_story_indexes
from adapters.success_metrics import ensure_success_metrics_indexes


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
    ensure_story_indexes(db)
    ensure_success_metrics_indexes(db)
    ensure_ingress_count_indexes(db)
