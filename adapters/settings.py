"""Configuration from the environment and an optional ``.env`` file (docs/configuration.md).

``load_settings`` validates everything at start-up; a missing or malformed value raises
``ConfigError`` whose message is one line naming the variable. Entry points print that line
and exit with code 2.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: Pinned so that payload shapes do not change under us when Stripe's default moves.
DEFAULT_STRIPE_API_VERSION = "2024-06-20"

_STRIPE_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$")
_WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/=_-]+$")
#: A browser's ``Origin``: http(s), a host name or IP literal, an optional port; nothing after.
_ORIGIN = re.compile(r"^https?://([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$")

#: Bytes a secret must have when ``APP_ENV=production`` (HS256 keys shorter than the hash are guessable).
MIN_SECRET_BYTES = 32


class ConfigError(Exception):
    """A missing or malformed setting; ``str(error)`` is one line naming it."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration; secrets (and URLs that may hold passwords) are left out of ``repr``."""

    app_env: str
    host: str
    port: int
    stripe_secret_key: str = field(repr=False)
    stripe_webhook_secrets: tuple[str, ...] = field(repr=False)
    stripe_api_base: str | None
    stripe_api_version: str
    mongodb_uri: str = field(repr=False)  # URLs may carry a password
    mongodb_db: str
    redis_url: str = field(repr=False)
    jwt_secret: str = field(repr=False)
    #: Furthest ahead a JWT's ``exp`` may be, in days (a token "valid for ever" is refused).
    jwt_max_age_days: int
    #: HMAC key over every queued message (Redis is not a trust boundary: docs/queue-security.md);
    #: never in Redis.
    #: The first signs queued messages, every one verifies them (rotation).
    queue_signing_keys: tuple[bytes, ...] = field(repr=False)
    ops_token: str | None = field(repr=False)
    metrics_token: str | None = field(repr=False)
    smtp_url: str | None = field(repr=False)
    email_from: str
    ops_email: str | None
    app_base_url: str
    #: The ingress's public base URL as Stripe reaches it (``payments-ops doctor``).
    public_url: str | None
    #: Origins whose browser code may call ``/api/payments/…`` (CORS); none means no CORS answers.
    cors_origins: tuple[str, ...]
    refund_window_days: int
    webhook_max_bytes: int
    rate_limit_per_minute: int
    #: Refund requests per user, and per payment whoever asks, per minute (429 beyond).
    refund_rate_limit_per_minute: int
    refund_payment_rate_limit_per_minute: int
    #: The request line and headers of one request, in bytes (431 beyond).
    max_header_bytes: int
    #: How long a client may take to send a request's head, then its body, before it is cut off (408).
    header_timeout_seconds: int
    body_timeout_seconds: int
    # Tuning knobs (README): retries, broker timing, worker size.
    retry_min_backoff_ms: int
    retry_max_backoff_ms: int
    retry_max_retries: int
    broker_heartbeat_timeout_ms: int
    broker_maintenance_chance: int
    email_max_retries: int
    notification_sweep_seconds: int
    #: Times the stale-work sweep queues a refund request left pending again before it fails it.
    refund_max_requeues: int
    worker_processes: int
    worker_threads: int
    #: Messages each worker process holds per queue, running and waiting (0: two per thread).
    worker_prefetch: int
    #: Longest an idle consumer sleeps between polls of its empty queue (Dramatiq's worker timeout).
    worker_poll_ms: int
    log_level: str

    @property
    def production(self) -> bool:
        return self.app_env == "production"


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines; ``#`` comments, ``export`` prefixes and quotes are allowed."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        return value or default

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(f"{name} is required but not set")
        return value

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def url(self, name: str, default: str | None, schemes: tuple[str, ...]) -> str | None:
        value = self.text(name, default)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise ConfigError(f"{name} must be a {'/'.join(schemes)} URL, got {_redact(value)!r}")
        return value


def _redact(url: str) -> str:
    """Hide a password in a URL so that a config error never prints a secret."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Build validated settings; the process environment wins over ``.env``."""
    env: dict[str, str] = read_dotenv(dotenv) if dotenv else {}
    env.update(os.environ if environ is None else environ)
    r = _Reader(env)

    app_env = r.text("APP_ENV", "development") or "development"
    if app_env not in ("development", "test", "production"):
        raise ConfigError(f"APP_ENV must be development, test or production, got {app_env!r}")

    key = r.required("STRIPE_SECRET_KEY")
    if not _STRIPE_KEY.match(key):
        raise ConfigError("STRIPE_SECRET_KEY must look like sk_test_…, sk_live_… or rk_…")
    secrets = tuple(s.strip() for s in r.required("STRIPE_WEBHOOK_SECRET").split(",") if s.strip())
    if not secrets or not all(_WHSEC.match(s) for s in secrets):
        raise ConfigError("STRIPE_WEBHOOK_SECRET must be one or more comma-separated whsec_… values")

    base_url = r.url("APP_BASE_URL", "http://localhost:5173", ("http", "https")) or ""
    settings = Settings(
        app_env=app_env,
        host=r.text("HOST", "127.0.0.1") or "127.0.0.1",
        port=r.integer("PORT", 5001, minimum=1),
        stripe_secret_key=key,
        stripe_webhook_secrets=secrets,
        stripe_api_base=r.url("STRIPE_API_BASE", None, ("http", "https")),
        stripe_api_version=r.text("STRIPE_API_VERSION", DEFAULT_STRIPE_API_VERSION) or "",
        mongodb_uri=r.url("MONGODB_URI", "mongodb://127.0.0.1:27017", ("mongodb", "mongodb+srv")) or "",
        mongodb_db=r.text("MONGODB_DB", "app") or "app",
        redis_url=r.url("REDIS_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss", "unix")) or "",
        jwt_secret=r.required("JWT_SECRET"),
        jwt_max_age_days=r.integer("JWT_MAX_AGE_DAYS", 30, minimum=1),
        queue_signing_keys=_signing_keys(r, production=app_env == "production"),
        ops_token=r.text("OPS_TOKEN"),
        metrics_token=r.text("METRICS_TOKEN"),
        smtp_url=r.url("SMTP_URL", None, ("smtp", "smtps")),
        email_from=r.text("EMAIL_FROM", "payments@localhost") or "",
        ops_email=r.text("OPS_EMAIL"),
        app_base_url=base_url,
        public_url=r.url("PUBLIC_URL", None, ("http", "https")),
        cors_origins=_cors_origins(r, base_url, production=app_env == "production"),
        refund_window_days=r.integer("REFUND_WINDOW_DAYS", 30),
        webhook_max_bytes=r.integer("WEBHOOK_MAX_BYTES", 1_048_576, minimum=1024),
        rate_limit_per_minute=r.integer("RATE_LIMIT_PER_MINUTE", 10, minimum=1),
        refund_rate_limit_per_minute=r.integer("REFUND_RATE_LIMIT_PER_MINUTE", 5, minimum=1),
        refund_payment_rate_limit_per_minute=r.integer("REFUND_PAYMENT_RATE_LIMIT_PER_MINUTE", 3, minimum=1),
        max_header_bytes=r.integer("MAX_HEADER_BYTES", 16_384, minimum=1024),
        header_timeout_seconds=r.integer("HEADER_TIMEOUT_SECONDS", 10, minimum=1),
        body_timeout_seconds=r.integer("BODY_TIMEOUT_SECONDS", 30, minimum=1),
        retry_min_backoff_ms=r.integer("RETRY_MIN_BACKOFF_MS", 5_000, minimum=1),
        retry_max_backoff_ms=r.integer("RETRY_MAX_BACKOFF_MS", 600_000, minimum=1),
        retry_max_retries=r.integer("RETRY_MAX_RETRIES", 12),
        broker_heartbeat_timeout_ms=r.integer("BROKER_HEARTBEAT_TIMEOUT_MS", 30_000, minimum=100),
        broker_maintenance_chance=r.integer("BROKER_MAINTENANCE_CHANCE", 1_000),
        email_max_retries=r.integer("EMAIL_MAX_RETRIES", 10),
        notification_sweep_seconds=r.integer("NOTIFICATION_SWEEP_SECONDS", 60, minimum=1),
        refund_max_requeues=r.integer("REFUND_MAX_REQUEUES", 10, minimum=1),
        worker_processes=r.integer("WORKER_PROCESSES", 2, minimum=1),
        worker_threads=r.integer("WORKER_THREADS", 8, minimum=1),
        worker_prefetch=r.integer("WORKER_PREFETCH", 0),
        worker_poll_ms=r.integer("WORKER_POLL_MS", 20, minimum=1),
        log_level=(r.text("LOG_LEVEL", "INFO") or "INFO").upper(),
    )
    if settings.production:
        _check_production(settings)
    return settings


def _signing_keys(r: _Reader, production: bool) -> tuple[bytes, ...]:
    """``QUEUE_SIGNING_KEY``, one or more comma-separated keys: the first signs, all verify. Outside
    production it defaults to a key derived from ``JWT_SECRET``.

    Every process that enqueues or consumes (ingress, workers, ops) must share them; deriving the
    key from a secret they already share keeps development and tests at three variables.
    """
    given = r.required("QUEUE_SIGNING_KEY") if production else r.text("QUEUE_SIGNING_KEY")
    if given is None:
        return (hashlib.sha256(b"payments-pipeline queue signing:" + r.required("JWT_SECRET").encode()).digest(),)
    keys = tuple(key.strip().encode() for key in given.split(","))
    if not all(keys):
        raise ConfigError("QUEUE_SIGNING_KEY must be one or more comma-separated keys, none of them empty")
    return keys


def _cors_origins(r: _Reader, base_url: str, production: bool) -> tuple[str, ...]:
    """``CORS_ORIGINS``, comma-separated origins; unset: the origin of ``APP_BASE_URL`` (the MERN app),
    and none in production, where the app's origin must be named.

    Lower-cased, with a default port dropped, as browsers send ``Origin``: a match is exact.
    """
    given = r.text("CORS_ORIGINS")
    if given is None:
        return () if production else (_origin_of(base_url),)
    origins = [o.strip().lower() for o in given.split(",")]
    bad = [o for o in origins if not _ORIGIN.fullmatch(o) or not _port_ok(o)]
    if bad:
        raise ConfigError(
            f"CORS_ORIGINS must be comma-separated origins like https://app.example.com "
            f"(http or https, a host, an optional port; no path, no *), got {bad[0]!r}"
        )
    return tuple(dict.fromkeys(_origin_of(o) for o in origins))


def _port_ok(origin: str) -> bool:
    port = origin.rpartition(":")[2]
    return not port.isdigit() or 0 < int(port) < 65536


def _origin_of(url: str) -> str:
    """The origin of ``url`` as a browser sends it: scheme, host, the port unless the scheme's default."""
    parts = urlsplit(url.lower())
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = "" if parts.port is None or parts.port == default else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def _check_production(s: Settings) -> None:
    secrets = {
        "JWT_SECRET": s.jwt_secret,
        "QUEUE_SIGNING_KEY": min(s.queue_signing_keys, key=len).decode(errors="replace"),
        "STRIPE_WEBHOOK_SECRET": min(s.stripe_webhook_secrets, key=len),
        "OPS_TOKEN": s.ops_token,
        "METRICS_TOKEN": s.metrics_token,
    }
    for name, value in secrets.items():
        if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"{name} must be at least {MIN_SECRET_BYTES} bytes when APP_ENV=production")
    if s.stripe_secret_key.startswith(("sk_test_", "rk_test_")):
        raise ConfigError("STRIPE_SECRET_KEY is a test key, refused when APP_ENV=production")
    if s.stripe_api_base is not None:
        raise ConfigError("STRIPE_API_BASE points at a Stripe stand-in, refused when APP_ENV=production")
    if s.smtp_url is None:
        raise ConfigError("SMTP_URL is required when APP_ENV=production")


def load_or_exit() -> Settings:
    """Settings for an entry point; a bad configuration prints its one line and exits with 2."""
    try:
        return load_settings()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def consumer_environment(settings: Settings) -> dict[str, str]:
    """How each worker process's Dramatiq consumers poll Redis, as the variables Dramatiq reads.

    Dramatiq reads both when ``dramatiq.worker`` is imported (its CLI has no option for them), so
    they are set before the import, and the worker processes inherit them.

    - ``dramatiq_queue_prefetch``: messages a process holds per queue, running or waiting for a
      thread; two per thread by default (``WORKER_PREFETCH=0``). At one per thread a consumer
      whose threads are all busy may not fetch, sleeps its back-off, and finishing threads wait
      for it. A killed process strands at most this many per queue, back within about 40 s
      (``RequeueDeadWorkers``).
    - ``dramatiq_worker_timeout`` (``WORKER_POLL_MS``, 20 ms): the cap of a consumer's back-off
      (5-10 ms after the first empty poll, doubling), idle or with all its prefetch in hand.
      Dramatiq's default, 1 s, lets a message that finds the consumer asleep wait up to a second.
      The price: an idle consumer polls Redis about 65 times a second; a delay queue's, ten times
      less (``workers.consumer.Consumer``), so an idle process of three queues makes some 200 cheap
      calls a second.

    How each choice trades drain rate against latency: docs/performance.md#worker-polling-and-prefetch.
    """
    prefetch = settings.worker_prefetch or 2 * settings.worker_threads
    return {"dramatiq_queue_prefetch": str(prefetch), "dramatiq_worker_timeout": str(settings.worker_poll_ms)}
