"""The deployment check's rules (``payments-ops doctor``): facts in, one finding per check out. No I/O.

Each finding is one line for a person on call: what was found, and for a failure the fix in words
and the command that does it (docs/operations.md#payments-ops-doctor).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

#: Seconds the local clock may differ from Stripe's. Stripe refuses a webhook signed more than 300 s
#: from the receiver's clock; the Date header has one-second resolution and the round trip adds a
#: little, so a margin well inside 300 s leaves room before deliveries start failing.
CLOCK_TOLERANCE_SECONDS = 30.0


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``found`` says what was seen; ``fix`` (failures only) what to do."""

    check: str
    ok: bool
    found: str
    fix: str | None = None


def passed(check: str, found: str) -> Finding:
    return Finding(check, True, found)


def failed(check: str, found: str, fix: str) -> Finding:
    return Finding(check, False, found, fix)


def key_mode(key: str) -> str:
    """``live`` or ``test``, from a Stripe key's prefix (``sk_live_…``, ``rk_test_…``)."""
    return "live" if key.startswith(("sk_live_", "rk_live_")) else "test"


def keys_agree(app_env: str, key: str) -> Finding:
    """Production runs on a live key only; development and test on a test key only.

    A live key outside production is a failure, not a warning: a laptop's stack or a CI run would
    create real charges and receive real customers' webhooks.
    """
    mode = key_mode(key)
    found = f"APP_ENV={app_env} with a {mode} key ({key[:8]}…)"
    if app_env == "production" and mode == "test":
        fix = "set STRIPE_SECRET_KEY to the account's sk_live_… key (Stripe dashboard → Developers → API keys)"
        return failed("keys", found, fix)
    if app_env != "production" and mode == "live":
        fix = "use the account's sk_test_… key here, or set APP_ENV=production if this is the production service"
        return failed("keys", found, fix)
    return passed("keys", found)


@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint as Stripe (or the local stand-in) has it. ``events`` holds ``*`` for all;
    ``secret_sha256`` is known only from the local stand-in (Stripe never shows a secret again)."""

    url: str
    events: tuple[str, ...]
    enabled: bool = True
    secret_sha256: str | None = None


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def endpoint_for(endpoints: Sequence[Endpoint], urls: Sequence[str]) -> Endpoint | None:
    """The endpoint whose URL is one of ``urls`` (the webhook path or its alias), enabled ones first."""
    matching = [e for e in endpoints if any(_same_url(e.url, u) for u in urls)]
    matching.sort(key=lambda e: not e.enabled)
    return matching[0] if matching else None


def endpoint_covers(
    endpoints: Sequence[Endpoint], urls: Sequence[str], handled: Collection[str], where: str, create: str
) -> Finding:
    """Stripe has an enabled endpoint for this service's URL sending every handled event type.

    ``where``: which API was asked (Stripe's, or the local stand-in's); ``create``: the command that
    creates or fixes the endpoint there.
    """
    found = endpoint_for(endpoints, urls)
    if found is None:
        others = ", ".join(sorted(e.url for e in endpoints)) or "none"
        return failed("webhook endpoint", f"{where}: no endpoint for {urls[0]} (endpoints: {others})", create)
    if not found.enabled:
        return failed("webhook endpoint", f"{where}: the endpoint for {found.url} is disabled", create)
    missing = [] if "*" in found.events else sorted(set(handled) - set(found.events))
    if missing:
        shown = ", ".join(missing)
        return failed(
            "webhook endpoint", f"{where}: {found.url} does not send {len(missing)} handled types: {shown}", create
        )
    return passed("webhook endpoint", f"{where}: {found.url} sends all {len(handled)} handled event types")


@dataclass(frozen=True)
class SecretFacts:
    """What proves the signing secrets: the ingress's answer to a test event signed with each configured
    secret (in order), to one signed with a random secret, and, where known, whether the endpoint's own
    secret is one of them (the local stand-in tells; Stripe never does)."""

    answers: tuple[int, ...]
    wrong_secret_answer: int
    endpoint_secret_configured: bool | None
    undelivered: int | None = None


def secrets_verify(facts: SecretFacts, url: str) -> Finding:
    refused = [str(i + 1) for i, status in enumerate(facts.answers) if status != 200]
    count = len(facts.answers)
    restart = "set STRIPE_WEBHOOK_SECRET to the endpoint's whsec_… (Stripe dashboard → Webhooks → Signing secret) "
    if refused:
        answers = ", ".join(str(s) for s in facts.answers)
        found = (
            f"the ingress at {url} refused a test event signed with secret {', '.join(refused)} of {count} ({answers})"
        )
        return failed(
            "webhook secret", found, restart + "in the ingress's and this command's configuration, restart the ingress"
        )
    if facts.wrong_secret_answer == 200:
        found = f"the ingress at {url} accepted a test event signed with a random secret"
        return failed(
            "webhook secret", found, "the ingress does not check signatures: deploy this service's ingress at that URL"
        )
    if facts.endpoint_secret_configured is False:
        found = f"the ingress accepts the {count} configured secrets, but the endpoint signs with another one"
        return failed("webhook secret", found, restart + "everywhere, then run `payments-ops reconcile`")
    if facts.undelivered:
        found = (
            f"the ingress accepts the {count} configured secrets, but Stripe has "
            f"{facts.undelivered} handled events of the last day not delivered"
        )
        fix = (
            restart
            + "if it was rotated; then `payments-ops reconcile` "
            + "(Stripe dashboard → Webhooks shows each failed delivery)"
        )
        return failed("webhook secret", found, fix)
    proof = {True: "the endpoint signs with one of them", None: "the endpoint's own secret cannot be read from Stripe"}
    delivered = "" if facts.undelivered is None else "; Stripe delivered every handled event of the last day"
    found = (
        f"the ingress accepts events signed with each of the {count} secrets and refuses a wrong one; "
        f"{proof[facts.endpoint_secret_configured]}{delivered}"
    )
    return passed("webhook secret", found)


@dataclass(frozen=True)
class IndexSpec:
    """An index the code creates: its collection, name and keys (field and direction, in order)."""

    collection: str
    name: str
    keys: tuple[tuple[str, int], ...]


def missing_indexes(
    expected: Sequence[IndexSpec], present: Mapping[str, Mapping[str, tuple[tuple[str, int], ...]]]
) -> list[str]:
    """``collection.name`` of each expected index absent, or present with other keys."""
    return [
        f"{spec.collection}.{spec.name}"
        for spec in expected
        if present.get(spec.collection, {}).get(spec.name) != spec.keys
    ]


def stores_answer(redis_error: str | None, mongo_error: str | None, expected: int, missing: Sequence[str]) -> Finding:
    if redis_error or mongo_error:
        down = "; ".join(
            f"{name}: {error}" for name, error in (("Redis", redis_error), ("MongoDB", mongo_error)) if error
        )
        return failed("redis and mongodb", down, "check REDIS_URL and MONGODB_URI and that both servers run")
    if missing:
        found = f"both answer; {len(missing)} of {expected} indexes missing: {', '.join(missing)}"
        fix = "restart the ingress or a worker (each creates the indexes at start) and read its log for the index error"
        return failed("redis and mongodb", found, fix)
    return passed("redis and mongodb", f"both answer; all {expected} indexes in place")


def workers_alive(alive: int, timeout_seconds: float) -> Finding:
    if alive:
        return passed(
            "workers",
            f"{alive} worker process{'es' if alive != 1 else ''} with a heartbeat in the last {timeout_seconds:g} s",
        )
    fix = "start the workers (`python -m workers`, the Procfile's worker) and read their log for why they stopped"
    return failed("workers", f"no worker heartbeat in the last {timeout_seconds:g} s", fix)


@dataclass(frozen=True)
class ProbeOutcome:
    """A signed probe message's fate: the worker that ran it, or the refusal a worker recorded, or neither."""

    probe_id: str
    answered_by: str | None
    refused: str | None
    waited_seconds: float


def queue_key_shared(outcome: ProbeOutcome) -> Finding:
    if outcome.answered_by:
        return passed(
            "queue signing",
            f"probe {outcome.probe_id} ran on {outcome.answered_by} in {outcome.waited_seconds:.1f} s: "
            "the workers verify what this configuration signs",
        )
    if outcome.refused:
        found = f"a worker refused probe {outcome.probe_id}: {outcome.refused}"
        fix = ("give the workers, the ingress and this command the same QUEUE_SIGNING_KEY (first signs) "
               "and restart them; "
               "then `payments-ops failures purge --error Unsigned --yes` drops the refused probe")  # fmt: skip
        return failed("queue signing", found, fix)
    found = f"probe {outcome.probe_id} not run within {outcome.waited_seconds:.0f} s"
    fix = "start the workers if none runs; else see `payments-ops queues` for a backlog, and the workers' logs"
    return failed("queue signing", found, fix)


def smtp_login(target: str | None, error: str | None, logged_in: bool) -> Finding:
    if target is None:
        return failed(
            "smtp", "SMTP_URL is not set: no email can be sent", "set SMTP_URL (smtp://user:pass@host:587?starttls=1)"
        )
    if error:
        return failed(
            "smtp",
            f"{target}: {error}",
            "check SMTP_URL's host, port, user and password (and ?starttls=1) with the provider",
        )
    how = "login accepted" if logged_in else "connected (no user in SMTP_URL: no login to try)"
    return passed("smtp", f"{target}: {how}, nothing sent")


def clock_agrees(skew_seconds: float, source: str, tolerance: float = CLOCK_TOLERANCE_SECONDS) -> Finding:
    found = f"local clock {skew_seconds:+.1f} s from {source}'s (tolerance {tolerance:g} s)"
    if abs(skew_seconds) <= tolerance:
        return passed("clock", found)
    fix = "synchronise this host's clock (NTP: `timedatectl set-ntp true`, or `chronyc makestep`)"
    return failed("clock", found, fix)
