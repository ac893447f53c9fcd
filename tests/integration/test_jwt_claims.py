"""Hostile JWT claims through the payment API: the role in ``users`` decides, ``exp`` is a bounded integer."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from adapters.queue import build_broker
from adapters.settings import ConfigError, Settings, load_settings
from ingress.composition import create_app
from tests.integration.api_support import JWT_SECRET, FakeGateway, Seeded, api_settings, bearer, seed

STATISTICS = "/api/payments/specialist/statistics"
HISTORY = "/api/payments/history/customer"
DAY = 86400


def serve(settings: Settings, db: Any) -> Iterator[tuple[TestClient, Seeded]]:
    broker = build_broker(settings)
    with TestClient(create_app(settings, broker=broker, db=db, stripe_gateway=FakeGateway())) as client:
        yield client, seed(db)
    broker.close()


@pytest.fixture
def api(settings: Settings, db: Any) -> Iterator[tuple[TestClient, Seeded]]:
    yield from serve(api_settings(settings), db)


def signed(claims: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, 'HS256')}"}


def test_a_customer_claiming_admin_does_not_read_admin_statistics(api: tuple[TestClient, Seeded]) -> None:
    """The customer's token said ``role: admin`` and read a specialist's earnings: now 401, users.role decides."""
    client, seeded = api
    params = {"specialistId": str(seeded.specialist)}
    for user, claimed in ((seeded.customer, "admin"), (seeded.specialist, "admin"), (seeded.admin, "customer")):
        forged = client.get(STATISTICS, params=params, headers=bearer(user, claimed))
        assert (forged.status_code, forged.json()["error"]["code"]) == (401, "unauthorized"), claimed
    assert client.get(STATISTICS, params=params, headers=bearer(seeded.admin, "admin")).status_code == 200
    assert client.get(STATISTICS, params=params, headers=bearer(seeded.admin, None)).status_code == 200
    assert client.get(STATISTICS, params=params, headers=bearer(seeded.customer, None)).status_code == 403


@pytest.mark.parametrize(
    "exp",
    [
        1e308,
        10**30,
        2**63,
        "far",  # replaced by now + 31 days: beyond JWT_MAX_AGE_DAYS
        "float",  # replaced by now + 60.5: a NumericDate, but not an integer
    ],
)
def test_an_exp_far_ahead_or_not_an_integer_is_401(api: tuple[TestClient, Seeded], exp: Any) -> None:
    """``exp`` of 1e308 or 10^30 made a token valid forever: a finite integer at most 30 days ahead, else 401."""
    client, seeded = api
    now = int(time.time())
    value = {"far": now + 31 * DAY, "float": now + 60.5}.get(exp, exp) if isinstance(exp, str) else exp
    answer = client.get(HISTORY, headers=signed({"id": str(seeded.customer), "role": "customer", "exp": value}))
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized")
    fine = client.get(HISTORY, headers=signed({"id": str(seeded.customer), "exp": now + 29 * DAY}))
    assert fine.status_code == 200


def test_jwt_max_age_days_bounds_exp(settings: Settings, db: Any) -> None:
    """With ``JWT_MAX_AGE_DAYS=1`` a token valid for two days is refused and one for an hour accepted."""
    for client, seeded in serve(dataclasses.replace(api_settings(settings), jwt_max_age_days=1), db):
        now = int(time.time())
        two_days = client.get(HISTORY, headers=signed({"id": str(seeded.customer), "exp": now + 2 * DAY}))
        assert two_days.status_code == 401
        assert client.get(HISTORY, headers=signed({"id": str(seeded.customer), "exp": now + 3600})).status_code == 200


def test_jwt_max_age_days_is_a_setting() -> None:
    """Default 30; a positive integer, else the one-line configuration error."""
    base = {"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x", "JWT_SECRET": "s"}
    assert load_settings(base, dotenv=None).jwt_max_age_days == 30
    assert load_settings({**base, "JWT_MAX_AGE_DAYS": "7"}, dotenv=None).jwt_max_age_days == 7
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigError, match="JWT_MAX_AGE_DAYS"):
            load_settings({**base, "JWT_MAX_AGE_DAYS": bad}, dotenv=None)
