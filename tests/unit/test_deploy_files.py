"""Procfile and docker-compose.yml describe the production processes (docs/operations.md#running-it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_has_the_five_services_wired_together() -> None:
    """redis (AOF), mongo 7 as a replica set, mailpit, web and worker, with the apps pointed at them."""
    services = compose()["services"]
    assert set(services) == {"redis", "mongo", "mailpit", "web", "worker"}
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["mongo"]["image"] == "mongo:7" and "--replSet" in services["mongo"]["command"]
    for app, module in (("web", "ingress"), ("worker", "workers")):
        env = services[app]["environment"]
        assert services[app]["command"] == ["python", "-m", module]
        assert env["REDIS_URL"].startswith("redis://redis:") and "replicaSet=rs0" in env["MONGODB_URI"]
        assert set(services[app]["depends_on"]) == {"redis", "mongo"}
    assert set(compose()["volumes"]) == {"redis-data", "mongo-data", "metrics-data"}
    for app in ("web", "worker"):  # one metrics directory for both, so /metrics adds up every process
        assert services[app]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/metrics"
        assert services[app]["volumes"] == ["metrics-data:/metrics"]


def test_every_compose_service_is_restarted_when_it_dies() -> None:
    """A crashed ingress, worker, Redis or MongoDB comes back on its own; both apps share the queue key."""
    services = compose()["services"]
    assert {name: spec.get("restart") for name, spec in services.items()} == dict.fromkeys(services, "unless-stopped")
    assert services["web"]["environment"]["QUEUE_SIGNING_KEY"] == services["worker"]["environment"]["QUEUE_SIGNING_KEY"]


def test_procfile_runs_the_same_two_processes() -> None:
    """The Procfile's web and worker run the ingress and the workers."""
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert lines["web"].strip().endswith("python -m ingress") and lines["worker"].strip() == "python -m workers"
