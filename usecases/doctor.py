"""``payments-ops doctor``: check a deployment end to end, one finding per check.

What each check proves and does not: docs/operations.md#payments-ops-doctor.

The checks run in order and each stands alone: one that raises becomes a failure naming the error,
and the others still run. The rules are ``domain.doctor``'s; this module gathers their facts
through the ports.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain import doctor
from domain.doctor import Finding, ProbeOutcome, SecretFacts
from usecases.handlers import SUBSCRIBED
from usecases.ports import DoctorPorts

#: The webhook's path on the ingress, and the alias the ingress also serves.
WEBHOOK_PATHS = ("/api/webhooks/stripe", "/api/payments/webhooks/stripe")
#: Seconds to wait for a worker to run the probe.
PROBE_WAIT_SECONDS = 10.0
#: A type no handler takes: the ingress verifies it, answers 200 ``ignored`` and enqueues nothing.
TEST_EVENT_TYPE = "payments_ops.doctor"


@dataclass(frozen=True)
class DoctorConfig:
    app_env: str
    stripe_key: str
    #: The webhook URLs Stripe should post to (the path first, then its alias); empty: no public URL known.
    webhook_urls: tuple[str, ...]
    webhook_secrets: tuple[str, ...]
    probe_wait_seconds: float = PROBE_WAIT_SECONDS


def webhook_urls(base: str) -> tuple[str, ...]:
    """The webhook URLs of a service reached at ``base`` (a full webhook URL is kept as it is)."""
    base = base.rstrip("/")
    for path in WEBHOOK_PATHS:
        if base.endswith(path):
            return (base,)
    return tuple(base + path for path in WEBHOOK_PATHS)


def run(config: DoctorConfig, ports: DoctorPorts) -> list[Finding]:
    checks = [
        ("keys", lambda: doctor.keys_agree(config.app_env, config.stripe_key)),
        ("webhook endpoint", lambda: check_endpoint(config, ports)),
        ("webhook secret", lambda: check_secret(config, ports)),
        ("redis and mongodb", lambda: check_stores(ports)),
        ("workers", lambda: doctor.workers_alive(ports.queue.live_workers(), ports.queue.heartbeat_timeout_seconds)),
        ("queue signing", lambda: check_probe(config, ports)),
        ("smtp", lambda: check_mail(ports)),
        ("clock", lambda: doctor.clock_agrees(ports.stripe.clock_skew(), "Stripe")),
    ]
    findings = []
    for name, check in checks:
        try:
            findings.append(check())
        except Exception as error:  # one broken part must not hide the others' findings
            findings.append(doctor.failed(name, f"{type(error).__name__}: {error}", _fix_for(name)))
    return findings


def _fix_for(name: str) -> str:
    return {
        "webhook endpoint": "check STRIPE_SECRET_KEY (a restricted key needs Webhook Endpoints: read)",
        "webhook secret": "check that the ingress answers at the webhook URL (PUBLIC_URL or --url)",
        "clock": "check that Stripe's API answers (STRIPE_API_BASE, the network)",
    }.get(name, "see docs/operations.md#payments-ops-doctor")


NO_URL = "set PUBLIC_URL to the ingress's public base (https://payments.example.com) or pass --url"


def check_endpoint(config: DoctorConfig, ports: DoctorPorts) -> Finding:
    if not config.webhook_urls:
        return doctor.failed("webhook endpoint", "this service's public URL is not known", NO_URL)
    create = ports.stripe.create_command(config.webhook_urls[0], SUBSCRIBED)
    endpoints = ports.stripe.webhook_endpoints()
    return doctor.endpoint_covers(endpoints, config.webhook_urls, SUBSCRIBED, ports.stripe.where, create)


def test_event(now: datetime) -> bytes:
    """A Stripe-shaped event of a type no handler takes."""
    event = {
        "id": f"evt_doctor{secrets.token_hex(8)}",
        "object": "event",
        "type": TEST_EVENT_TYPE,
        "created": int(now.timestamp()),
        "livemode": False,
        "data": {"object": {"object": "doctor_probe"}},
    }
    return json.dumps(event).encode()


def check_secret(config: DoctorConfig, ports: DoctorPorts) -> Finding:
    """Proven: the ingress at the public URL verifies events signed with each configured secret (and only
    those). Proven on the local Stripe only: that the endpoint signs with one of them (Stripe never
    shows an endpoint's secret again); on Stripe, undelivered events of the last day are the evidence."""
    if not config.webhook_urls:
        return doctor.failed("webhook secret", "this service's public URL is not known", NO_URL)
    url = config.webhook_urls[0]
    now = datetime.now(UTC)
    answers = tuple(ports.webhook.post_signed(url, test_event(now), secret) for secret in config.webhook_secrets)
    wrong = ports.webhook.post_signed(url, test_event(now), "whsec_" + secrets.token_urlsafe(24))
    endpoint = doctor.endpoint_for(ports.stripe.webhook_endpoints(), config.webhook_urls)
    configured: bool | None = None
    if endpoint is not None and endpoint.secret_sha256 is not None:
        configured = endpoint.secret_sha256 in {_sha256(s) for s in config.webhook_secrets}
    undelivered = ports.stripe.undelivered_events(SUBSCRIBED, now - timedelta(days=1))
    return doctor.secrets_verify(SecretFacts(answers, wrong, configured, undelivered), url)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_stores(ports: DoctorPorts) -> Finding:
    redis_error, mongo_error = ports.stores.redis_error(), ports.stores.mongo_error()
    expected = ports.stores.expected_indexes()
    missing = [] if mongo_error else doctor.missing_indexes(expected, ports.stores.present_indexes())
    return doctor.stores_answer(redis_error, mongo_error, len(expected), missing)


def check_probe(config: DoctorConfig, ports: DoctorPorts) -> Finding:
    """A signed probe message round trip: a worker runs only what verifies under its keys, so a reply
    proves the workers verify what this configuration signs."""
    queue = ports.queue
    began = ports.monotonic()
    probe_id = queue.send_probe()
    answer = refusal = None
    while True:
        answer = queue.probe_answer(probe_id)
        refusal = None if answer else queue.probe_refusal(probe_id)
        waited = ports.monotonic() - began
        if answer or refusal or waited >= config.probe_wait_seconds:
            break
        ports.sleep(0.05)
    return doctor.queue_key_shared(ProbeOutcome(probe_id, answer, refusal, waited))


def check_mail(ports: DoctorPorts) -> Finding:
    if ports.mail.target is None:
        return doctor.smtp_login(None, None, False)
    try:
        logged_in = ports.mail.login()
    except Exception as error:  # the server's answer is the finding
        return doctor.smtp_login(ports.mail.target, f"{type(error).__name__}: {error}", False)
    return doctor.smtp_login(ports.mail.target, None, logged_in)
