"""``payments-ops doctor [--url URL] [--wait SECONDS]``: check the deployment, one line per check.

Each line is ``ok`` or ``FAIL``, the check, what was found, and for a failure ``fix:`` with the
words and command that fix it; exit 1 if any check fails. ``--json``: ``{"ok", "checks": [...]}``.
What each check proves: docs/operations.md#payments-ops-doctor.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict

from adapters.doctor import MailSide, QueueSide, Stores, StripeSide, WebhookPoster
from adapters.settings import Settings
from domain.doctor import Finding
from payments_ops.composition import Connected
from usecases import doctor
from usecases.ports import DoctorPorts


def _seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0.1 <= seconds <= 300:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0.1 to 300, got {raw!r}")
    return seconds


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("doctor", parents=[common], help="check the deployment: one line per check")
    parser.add_argument("--url", help="the ingress's public URL as Stripe reaches it (default: PUBLIC_URL)")
    wait = "seconds to wait for a worker to run the probe (0.1 to 300)"
    parser.add_argument("--wait", type=_seconds, default=doctor.PROBE_WAIT_SECONDS, help=wait)


def config(args: argparse.Namespace, settings: Settings, ingress: str | None) -> doctor.DoctorConfig:
    base = args.url or settings.public_url or ingress
    return doctor.DoctorConfig(
        app_env=settings.app_env,
        stripe_key=settings.stripe_secret_key,
        webhook_urls=doctor.webhook_urls(base) if base else (),
        webhook_secrets=settings.stripe_webhook_secrets,
        probe_wait_seconds=args.wait,
    )


def ports(settings: Settings, it: Connected) -> DoctorPorts:
    broker = it.broker
    return DoctorPorts(
        stripe=StripeSide(settings),
        webhook=WebhookPoster(),
        stores=Stores(it.db, broker),
        queue=QueueSide(broker, it.db),
        mail=MailSide(settings),
    )


def line(finding: Finding) -> str:
    text = f"{'ok  ' if finding.ok else 'FAIL'}  {finding.check}: {finding.found}"
    return text if finding.ok else f"{text}\n      fix: {finding.fix}"


def run_doctor(args: argparse.Namespace, settings: Settings, ingress: str | None, it: Connected) -> int:
    findings = doctor.run(config(args, settings, ingress), ports(settings, it))
    ok = all(f.ok for f in findings)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(f) for f in findings]}))
    else:
        print("\n".join(line(f) for f in findings))
    return 0 if ok else 1
