"""docker-compose.yml cannot run here (no Docker engine), so pin what makes it correct:
every service, its command module, health checks, and the one-shot migration first."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from shared.settings import CommonSettings, DeliverySettings, SyncSettings

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


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``PLAINTEXT://kafka:19092,HOST://:9092`` -> {name: (host, port)}."""
    parsed = {}
    for listener in value.split(","):
        name, address = listener.split("://")
        host, port = address.rsplit(":", 1)
        parsed[name] = (host, int(port))
    return parsed


def kafka_env() -> dict[str, Any]:
    env: dict[str, Any] = compose()["services"]["kafka"]["environment"]
    return env


def test_kafka_listeners_advertised_listeners_and_protocols_agree() -> None:
    env = kafka_env()
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(bound)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in bound and controller not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (_, port) in advertised.items():
        assert bound[name][1] == port, f"{name} is advertised on a port it does not listen on"
    voter_host, voter_port = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")[1].split(":")
    assert (voter_host, int(voter_port)) == ("kafka", bound[controller][1])


def test_services_use_the_network_listener_and_the_host_gets_its_own() -> None:
    """Inside the network the broker is kafka:<port>; a client on the host is sent to an
    address it can reach: 127.0.0.1 on a published port, the one the native stack uses."""
    services = compose()["services"]
    advertised = listeners(kafka_env()["KAFKA_ADVERTISED_LISTENERS"])
    inside = {f"{host}:{port}" for host, port in advertised.values() if host == "kafka"}
    for name in ("publisher", "sync", "scheduler", "delivery", "migrate"):
        assert services[name]["environment"]["PIGEONHOLE_KAFKA_BOOTSTRAP"] in inside, name
    health = " ".join(services["kafka"]["healthcheck"]["test"])
    assert any(address in health for address in inside)
    on_host = [f"{h}:{p}" for h, p in advertised.values() if h == "127.0.0.1"]
    assert on_host == [CommonSettings.model_fields["kafka_bootstrap"].default] == ["127.0.0.1:9092"]
    host_port = on_host[0].rsplit(":", 1)[1]
    assert f"127.0.0.1:{host_port}:{host_port}" in services["kafka"]["ports"]
    assert f"| {host_port} " in (REPO / "README.md").read_text()  # the port table says so


def test_every_published_port_is_on_loopback() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_each_dependency_is_waited_for_until_healthy_or_done() -> None:
    services = compose()["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends_on.items():
            one_shot = services[target].get("restart") == "no"
            assert "healthcheck" in services[target] or one_shot, target
            expected = "service_completed_successfully" if one_shot else "service_healthy"
            assert rule == {"condition": expected}, (name, target)


def test_compose_and_the_local_stack_tune_postgres_and_redis_alike() -> None:
    """deploy/README.md documents one tuning; both ways of running the stack carry it."""
    stack = (REPO / "deploy" / "local" / "stack.sh").read_text()
    tuned = ("shared_buffers", "wal_buffers", "max_wal_size", "checkpoint_timeout",
             "checkpoint_completion_target", "wal_compression")  # fmt: skip
    local = dict(
        (name, value.strip())
        for name, _, value in (line.partition(" = ") for line in stack.splitlines())
        if name in tuned
    )
    command = compose()["services"]["postgres"]["command"]
    docker = dict(arg.split("=", 1) for arg in command if "=" in arg)
    assert set(local) == set(tuned)
    assert docker == local
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        assert f"{setting} = on" in stack
        assert not any(arg.startswith(f"{setting}=") for arg in command)  # the default: on

    redis = compose()["services"]["redis"]["command"]
    flags = dict(zip(redis[1::2], redis[2::2], strict=True))
    assert flags == {"--appendonly": "yes", "--appendfsync": "everysec", "--save": "",
                     "--auto-aof-rewrite-min-size": "256mb"}  # fmt: skip
    for line in ("appendonly yes", "appendfsync everysec", 'save ""',
                 "auto-aof-rewrite-min-size 256mb"):  # fmt: skip
        assert f"\n{line}\n" in stack, line


def test_compose_runs_the_configured_number_of_workers_and_prometheus_finds_each() -> None:
    """PIGEONHOLE_DELIVERY_WORKERS delivery containers (one consumer group), each found by
    Prometheus through the service's DNS name; PIGEONHOLE_SYNC_WORKERS processes in the one
    sync container (its port is published once). The defaults are the settings' own."""
    services = compose()["services"]
    delivery, sync = services["delivery"], services["sync"]
    assert delivery["deploy"]["replicas"] == "${PIGEONHOLE_DELIVERY_WORKERS:-1}"
    assert DeliverySettings.model_fields["workers"].default == 1
    assert "ports" not in delivery  # replicas would all want the same host port
    assert sync["environment"]["PIGEONHOLE_SYNC_WORKERS"] == "${PIGEONHOLE_SYNC_WORKERS:-1}"
    assert SyncSettings.model_fields["workers"].default == 1

    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    static = [t for config in job["static_configs"] for t in config["targets"]]
    assert not any(t.startswith("delivery:") for t in static)  # that would be one replica
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["delivery"] and dns["type"] == "A"
    assert dns["port"] == DeliverySettings.model_fields["web_port"].default
