"""Configuration is validated at start-up with one clear line naming the variable (CONTRACT §2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.settings import ConfigError, load_settings

BASE = {"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc", "JWT_SECRET": "s3cret"}


def test_defaults_fill_what_is_optional() -> None:
    """Only the three secrets are required; the rest have the contract's defaults."""
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


def test_production_refuses_test_keys() -> None:
    """APP_ENV=production refuses an sk_test_ key."""
    with pytest.raises(ConfigError, match="test key"):
        load_settings({**BASE, "APP_ENV": "production", "SMTP_URL": "smtp://mail:25"}, dotenv=None)


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
