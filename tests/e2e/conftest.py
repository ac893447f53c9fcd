"""Clients for the running local stack of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from pymongo import MongoClient

from devstack.stack import Stack


@pytest.fixture
def stack_db(stack: Stack) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.urls["mongo"], tz_aware=True)
    yield client[stack.environ["MONGODB_DB"]]
    client.close()


@pytest.fixture
def stack_redis(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.urls["redis"])
    yield client
    client.close()


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.urls["ingress"], timeout=10) as client:
        yield client
