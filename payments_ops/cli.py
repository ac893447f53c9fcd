"""``payments-ops``: queues and failed jobs from a shell.

    payments-ops queues
    payments-ops failures list [--queue Q] [--actor A] [--error TEXT] [--since T] [--until T] [--state S]
    payments-ops failures show ID
    payments-ops failures replay [filters | --id ID …] [--rate N] [--yes]   (a dry run without --yes; N: 0.1-1000/s)
    payments-ops failures purge  [filters | --id ID …] [--yes]
    payments-ops failures export [filters | --id ID …]                      (JSON lines on stdout)
    payments-ops events replay EVT
    payments-ops reconcile [--since T] [--every SECONDS]                     (--every: run again and again)
    payments-ops review list | activate PI | refund PI | dismiss PI
    payments-ops stuck list | requeue [--older-than SECONDS]                 (dead workers' messages, unfinished events)
    payments-ops metrics [--window 1h|24h|7d|30d]                            (the success metrics over a window)
    payments-ops simulate EVENT_TYPE [--payment pi_…] [--ingress URL]        (a signed test event, like stripe trigger)
    payments-ops payment ID                                                  (pi_… or _id: timeline and diagnosis)
    payments-ops doctor [--url URL] [--wait SECONDS]                         (checks the deployment; 1: a check failed)
    payments-ops alerts check                                                (the alert rules now; emails changes)

Every command takes ``--json`` for scripts, and ``--as NAME``: the person the audit names (by
default the OS user). Exit codes: 0 done, 1 failed, 2 bad usage or configuration. What each
command is for: docs/operations.md#payments-ops.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.errors import InvalidId

from adapters.reads import MongoPaymentReads
from adapters.serialize import payment_json
from adapters.settings import ConfigError, Settings
from domain.errors import RequestRefused
from payments_ops import alerts, doctor, payment, simulate
from payments_ops import metrics as metrics_command
from payments_ops.composition import connect_ops
from payments_ops.config import ops_settings
from usecases import ops, reviews
from usecases.ops import MAX_RATE, MIN_RATE
from usecases.ports import FAILURE_STATES, Deps, FailureSelection, Operator, OpsDeps

#: The door the audit names for runs from this command.
VIA = "payments-ops"


class Usage(Exception):
    """Bad usage: exit code 2."""


def _moment(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rate(raw: str) -> float:
    """``--rate``: a finite number of messages per second from 0.1 to 1000 (1e-9 would wait 31 years)."""
    try:
        rate = float(raw)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"must be a number from {MIN_RATE:g} to {MAX_RATE:g} per second, got {raw!r}")
    return rate


def _person(raw: str) -> str:
    """``--as``: a name of 1 to 64 printable characters."""
    name = raw.strip()
    if not 1 <= len(name) <= 64 or not name.isprintable():
        raise argparse.ArgumentTypeError(f"must be a name of 1 to 64 printable characters, got {raw!r}")
    return name


def os_user() -> str:
    """Who runs the command, by default: the OS user (``getpass`` reads LOGNAME, USER, … then the password database)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no such variable and no passwd entry (a bare container)
        return "unknown"


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", dest="ids", action="append", default=[], help="a failure id (repeatable)")
    parser.add_argument("--queue")
    parser.add_argument("--actor")
    parser.add_argument("--error", help="text the final error contains (any case)")
    parser.add_argument("--since", type=_moment, help="last failure at or after (ISO 8601)")
    parser.add_argument("--until", type=_moment, help="last failure before (ISO 8601)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="payments-ops", description=__doc__.splitlines()[0] if __doc__ else None)
    root.add_argument("--json", action="store_true", help="machine-readable output")
    who = "the person the audit names (default: the OS user)"
    root.add_argument("--as", dest="who", type=_person, metavar="NAME", help=who)
    # --json and --as may also come after the command, where people put them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("--as", dest="who", type=_person, metavar="NAME", default=argparse.SUPPRESS, help=who)
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("queues", parents=[common], help="ready, delayed, in flight and dead per queue")
    failures = commands.add_parser("failures", help="failed jobs").add_subparsers(dest="action", required=True)
    listing = failures.add_parser("list", parents=[common])
    _filters(listing)
    listing.add_argument("--state", choices=FAILURE_STATES)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor")
    failures.add_parser("show", parents=[common]).add_argument("failure_id")
    replay = failures.add_parser("replay", parents=[common])
    _filters(replay)
    replay.add_argument("--rate", type=_rate, help="at most this many per second (0.1 to 1000)")
    replay.add_argument("--yes", action="store_true", help="act (without it: a dry run)")
    purge = failures.add_parser("purge", parents=[common])
    _filters(purge)
    purge.add_argument("--yes", action="store_true", help="act (without it: a dry run)")
    _filters(failures.add_parser("export", parents=[common]))
    events = commands.add_parser("events", help="stored Stripe events").add_subparsers(dest="action", required=True)
    events.add_parser("replay", parents=[common]).add_argument("event_id")
    reconcile = commands.add_parser("reconcile", parents=[common], help="queue Stripe's events we missed")
    reconcile.add_argument("--since", type=_moment, help="list events from here (default: a window, see README)")
    reconcile.add_argument("--every", type=float, help="run again every SECONDS until stopped")
    review = commands.add_parser("review", help="payments a person must look at").add_subparsers(
        dest="action", required=True
    )
    stuck = commands.add_parser("stuck", help="work nobody is doing").add_subparsers(dest="action", required=True)
    for action in ("list", "requeue"):
        stuck.add_parser(action, parents=[common]).add_argument("--older-than", type=float, default=600.0)
    metrics_command.add_parser(commands, common)
    sim = commands.add_parser("simulate", parents=[common], help="post a signed test event to the ingress")
    sim.add_argument("event_type", choices=simulate.TYPES)
    sim.add_argument("--payment", help="the pi_… id of a stored payment (default: store a pending one)")
    sim.add_argument("--ingress", help="the ingress URL (default: the local stack's, else HOST:PORT)")
    payment.add_parser(commands, common)
    doctor.add_parser(commands, common)
    alerting = commands.add_parser("alerts", help="the alert rules").add_subparsers(dest="action", required=True)
    alerting.add_parser("check", parents=[common], help="evaluate every rule once; email ops on a change")
    review.add_parser("list", parents=[common])
    for action in reviews.ACTIONS:
        review.add_parser(action, parents=[common]).add_argument("payment_id")
    return root


def selection(args: argparse.Namespace) -> FailureSelection:
    return FailureSelection(
        ids=tuple(args.ids),
        queue=args.queue,
        actor=args.actor,
        error=args.error,
        since=args.since,
        until=args.until,
        state=getattr(args, "state", None),
    )


def _print(value: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    print(json.dumps(value, default=str, indent=None if as_json else 2) if as_json else human(value))


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _progress(done: int, total: int) -> None:
    """A one-line progress bar on the terminal for long replays."""
    filled = int(30 * done / max(total, 1))
    end = "\n" if done == total else ""
    print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)


def _bulk(result: ops.BulkResult, verb: str) -> str:
    if result.dry_run:
        sample = _table(result.sample, ("id", "actor", "eventId", "error")) if result.sample else ""
        return f"dry run: {result.count} failures would be {verb} (add --yes to act)\n{sample}".rstrip()
    refused = f", {result.refused} refused (not signed by this service)" if result.refused else ""
    skipped = f", {result.skipped} skipped (taken by another run meanwhile)" if result.skipped else ""
    return f"{result.done} of {result.count} failures {verb}{refused}{skipped}"


def operator(args: argparse.Namespace) -> Operator:
    return Operator(args.who or os_user(), VIA)


def run_reconcile(args: argparse.Namespace, core: Deps, deps: OpsDeps) -> int:
    while True:
        report = ops.reconcile_audited(core, deps, who=operator(args), now=datetime.now(UTC), since=args.since)
        body = asdict(report)
        _print(body, args.json, lambda b: "  ".join(f"{k}={v}" for k, v in b.items()))
        sys.stdout.flush()
        if not args.every:
            return 0
        time.sleep(args.every)


def run_simulate(args: argparse.Namespace, settings: Settings, ingress: str | None, db: Any) -> int:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = (args.ingress or ingress or f"http://{host}:{settings.port}").rstrip("/")
    try:
        status, answer, intent_id = simulate.simulate(
            db, url, settings.stripe_webhook_secrets[0], args.event_type, args.payment
        )
    except LookupError as missing:
        print(f"payments-ops: {missing}", file=sys.stderr)
        return 1
    body = {"status": status, "answer": answer, "paymentId": intent_id}
    _print(body, args.json, lambda b: f"{b['status']} {b['answer']}  (payment {b['paymentId']})")
    return 0 if status == 200 else 1


def run_review(args: argparse.Namespace, core: Deps, deps: OpsDeps, reads: MongoPaymentReads) -> int:
    if args.action == "list":
        items = [payment_json(doc, "admin") for doc in reads.under_review()]
        rows = [{"paymentId": i["paymentId"], "status": i["status"], **i["reviewRequired"]} for i in items]
        _print(items, args.json, lambda _: _table(rows, ("paymentId", "status", "reason", "eventId", "at")))
        return 0
    try:
        outcome = reviews.act(args.payment_id, args.action, operator(args), core, deps.audit, now=datetime.now(UTC))
    except RequestRefused as refused:
        print(f"payments-ops: {refused.code}: {refused.message}", file=sys.stderr)
        return 1
    _print({"paymentId": args.payment_id, "action": args.action, "outcome": outcome}, args.json, str)
    return 0


def run(args: argparse.Namespace, deps: OpsDeps) -> int:
    as_json = args.json
    if args.command == "stuck":
        older = timedelta(seconds=args.older_than)
        if args.action == "list":
            _print(ops.stuck(deps, older), True, str)
        else:
            _print(ops.requeue_stuck(deps, who=operator(args), older_than=older), as_json, str)
    elif args.command == "queues":
        depths = deps.queues.depths()
        rows = [{"queue": q, **d} for q, d in depths.items()]
        _print(depths, as_json, lambda _: _table(rows, ("queue", "ready", "delayed", "in_flight", "dead")))
    elif args.command == "events":
        if not ops.replay_event(args.event_id, deps, who=operator(args)):
            print(f"no stored event {args.event_id}", file=sys.stderr)
            return 1
        _print({"replayed": args.event_id}, as_json, lambda _: f"event {args.event_id} queued again")
    elif args.action == "list":
        items, cursor = deps.failures.page(selection(args), args.limit, args.cursor)
        body = {"items": items, "nextCursor": cursor}
        columns = ("id", "queue", "actor", "eventId", "attempts", "lastFailedAt", "state", "error")
        _print(body, as_json, lambda _: _table(items, columns) + (f"\nnext page: --cursor {cursor}" if cursor else ""))
    elif args.action == "show":
        found = deps.failures.get(args.failure_id)
        if found is None:
            print(f"no failure {args.failure_id}", file=sys.stderr)
            return 1
        _print(found, True, str)
    elif args.action == "replay":
        bar = None if as_json or not sys.stderr.isatty() else _progress
        who = operator(args)
        result = ops.replay(selection(args), deps, who=who, dry_run=not args.yes, rate=args.rate, progress=bar)
        _print(asdict(result), as_json, lambda _: _bulk(result, "replayed"))
    elif args.action == "purge":
        result = ops.purge(selection(args), deps, who=operator(args), dry_run=not args.yes)
        _print(asdict(result), as_json, lambda _: _bulk(result, "purged"))
    else:  # export
        for record in ops.export(selection(args), deps):
            print(json.dumps(record, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # argparse's own usage errors are 2, --help is 0
        return int(exit_.code or 0)
    try:
        settings, ingress = ops_settings()
    except ConfigError as error:
        print(f"payments-ops: {error}", file=sys.stderr)
        return 2
    it = connect_ops(settings)
    try:
        if args.command == "reconcile":
            return run_reconcile(args, it.core, it.deps)
        if args.command == "metrics":
            return metrics_command.run(args, it.db)
        if args.command == "simulate":
            return run_simulate(args, settings, ingress, it.db)
        if args.command == "payment":
            return payment.run(args, it.story)
        if args.command == "doctor":
            return doctor.run_doctor(args, settings, ingress, it)
        if args.command == "review":
            return run_review(args, it.core, it.deps, it.reads)
        if args.command == "alerts":
            return alerts.check(it.alerts, args.json)
        return run(args, it.deps)
    except KeyboardInterrupt:  # Ctrl-C ends a --every loop
        return 0
    except (InvalidId, Usage) as error:
        print(f"payments-ops: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # Redis or MongoDB away, …: one line, exit 1
        print(f"payments-ops: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        it.close()
