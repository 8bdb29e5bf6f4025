"""docker-compose.yml cannot run here (no Docker engine), so pin what makes it correct:
every service, its command module, health checks, and the one-shot migration first."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_the_stack_and_all_four_services_with_health_checks() -> None:
    services = compose()["services"]
    for name in (
        "kafka",
        "postgres",
        "redis",
        "migrate",
        "publisher",
        "sync",
        "scheduler",
        "delivery",
    ):
        assert name in services, name
    for name in ("kafka", "postgres", "redis", "publisher", "sync", "scheduler", "delivery"):
        assert "healthcheck" in services[name], name
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_each_service_command_is_a_module_that_exists_and_waits_for_migrations() -> None:
    services = compose()["services"]
    for name in ("publisher", "sync", "scheduler", "delivery"):
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(command[2]) is not None, command
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert "pigeonhole db migrate" in " ".join(services["migrate"]["command"])


def test_dockerfile_copies_what_the_services_import() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for path in ("shared", "services", "uv.lock", "pyproject.toml"):
        assert path in dockerfile, path
