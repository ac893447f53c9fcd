"""Configuration is validated at start-up with one clear line naming the variable (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.settings import ConfigError, load_settings

BASE = {"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc", "JWT_SECRET": "s3cret"}


def test_defaults_fill_what_is_optional() -> None:
    """Only the three secrets are required; the rest have their documented defaults."""
    s = load_settings(BASE, dotenv=None)
    assert (s.port, s.mongodb_db, s.webhook_max_bytes, s.refund_window_days) == (5001, "app", 1_048_576, 30)
    assert s.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("name", ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "JWT_SECRET"])
def test_a_missing_required_variable_is_named(name: str) -> None:
    """A missing secret stops start-up with a message naming it."""
    env = {k: v for k, v in BASE.items() if k != name}
    with pytest.raises(ConfigError, match=name):
        load_settings(env, dotenv=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_SECRET_KEY", "pk_test_abc"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_a,nope"),
        ("PORT", "eighty"),
        ("REDIS_URL", "localhost:6379"),
        ("MONGODB_URI", "http://x"),
        ("APP_ENV", "staging"),
    ],
)
def test_a_malformed_value_is_named(name: str, value: str) -> None:
    """A malformed value stops start-up with one line naming the variable."""
    with pytest.raises(ConfigError, match=name) as info:
        load_settings({**BASE, name: value}, dotenv=None)
    assert "\n" not in str(info.value)


def test_several_webhook_secrets_are_accepted_for_rotation() -> None:
    """STRIPE_WEBHOOK_SECRET may list several secrets, comma-separated."""
    s = load_settings({**BASE, "STRIPE_WEBHOOK_SECRET": "whsec_old, whsec_new"}, dotenv=None)
    assert s.stripe_webhook_secrets == ("whsec_old", "whsec_new")


LONG = "x" * 32
PRODUCTION = {
    "APP_ENV": "production",
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_" + LONG,
    "JWT_SECRET": LONG,
    "QUEUE_SIGNING_KEY": LONG,
    "SMTP_URL": "smtp://mail:25",
}


def test_production_accepts_long_secrets_and_refuses_test_keys() -> None:
    """APP_ENV=production starts with live keys and long secrets, and refuses an sk_test_ key."""
    assert load_settings(PRODUCTION, dotenv=None).production
    with pytest.raises(ConfigError, match="test key"):
        load_settings({**PRODUCTION, "STRIPE_SECRET_KEY": "sk_test_abc"}, dotenv=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET", "a"),
        ("STRIPE_WEBHOOK_SECRET", f"whsec_{LONG},whsec_a"),
        ("QUEUE_SIGNING_KEY", "short"),
        ("QUEUE_SIGNING_KEY", ""),
        ("OPS_TOKEN", "ops"),
        ("METRICS_TOKEN", "metrics"),
    ],
)
def test_production_refuses_short_or_missing_secrets(name: str, value: str) -> None:
    """Each secret under 32 bytes (or a queue signing key left to its default) stops production start-up."""
    with pytest.raises(ConfigError, match=name):
        load_settings({**PRODUCTION, name: value}, dotenv=None)


def test_the_queue_signing_key_defaults_to_one_derived_from_the_jwt_secret() -> None:
    """Outside production every process sharing JWT_SECRET shares the queue key, which is not the JWT secret."""
    one, two = load_settings(BASE, dotenv=None), load_settings(BASE, dotenv=None)
    other = load_settings({**BASE, "JWT_SECRET": "another"}, dotenv=None)
    assert one.queue_signing_keys == two.queue_signing_keys != other.queue_signing_keys
    [key] = one.queue_signing_keys
    assert len(key) == 32 and BASE["JWT_SECRET"].encode() not in key


def test_queue_signing_keys_are_a_comma_separated_list_the_first_of_which_signs() -> None:
    """Rotation: the new key first, the old one after it until nothing it signed is left."""
    settings = load_settings({**BASE, "QUEUE_SIGNING_KEY": "new-key, old-key"}, dotenv=None)
    assert settings.queue_signing_keys == (b"new-key", b"old-key")
    with pytest.raises(ConfigError, match="QUEUE_SIGNING_KEY"):
        load_settings({**BASE, "QUEUE_SIGNING_KEY": "new-key,,old"}, dotenv=None)


def test_settings_never_show_secrets_in_their_repr() -> None:
    """repr(settings), as a log line or a traceback would print it, holds no secret and no URL password."""
    env = {**PRODUCTION, "OPS_TOKEN": "o" * 32, "MONGODB_URI": "mongodb://app:hunter2@db:27017"}
    shown = repr(load_settings(env, dotenv=None))
    for secret in (LONG, "o" * 32, "hunter2", "sk_live_abc"):
        assert secret not in shown
    assert "mongodb_db='app'" in shown


def test_a_password_in_a_url_is_not_echoed() -> None:
    """A malformed URL is reported without its password."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "SMTP_URL": "ftp://user:hunter2@mail"}, dotenv=None)
    assert "hunter2" not in str(info.value)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    """Values come from .env unless the environment sets them."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("# local\nexport PORT=6000\nMONGODB_DB='shop'\nJWT_SECRET=from-file\n")
    s = load_settings({**BASE}, dotenv=dotenv)
    assert (s.port, s.mongodb_db, s.jwt_secret) == (6000, "shop", "s3cret")


def test_the_worker_consumers_poll_every_20_ms_at_most_and_hold_two_messages_per_thread() -> None:
    """``python -m workers`` hands Dramatiq its prefetch and idle-poll cap, as the variables it reads."""
    from adapters.settings import consumer_environment

    assert consumer_environment(load_settings(BASE, dotenv=None)) == {
        "dramatiq_queue_prefetch": "16",
        "dramatiq_worker_timeout": "20",
    }
    tuned = load_settings({**BASE, "WORKER_THREADS": "4", "WORKER_PREFETCH": "5", "WORKER_POLL_MS": "50"}, dotenv=None)
    assert consumer_environment(tuned) == {"dramatiq_queue_prefetch": "5", "dramatiq_worker_timeout": "50"}
    with pytest.raises(ConfigError, match="WORKER_POLL_MS"):
        load_settings({**BASE, "WORKER_POLL_MS": "0"}, dotenv=None)
