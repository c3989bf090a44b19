"""docker-compose.yml's monitoring side, offline: Prometheus finds Alertmanager, Alertmanager and
Grafana load deploy/'s files, the dashboard reaches its datasource, the queues file is mounted
where CALLPULSE_QUEUES_CONFIG points. (tests/unit/test_deploy_files.py checks the rest.)"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

import tests.unit.test_deploy_files as deploy_checks

ROOT = deploy_checks.ROOT
SERVICES = deploy_checks.SERVICES
GRAFANA = ROOT / "deploy" / "grafana"


def mounts(name: str) -> dict[str, Path]:
    """Container path -> repository path of each bind mount of a service."""
    return {
        target: (ROOT / source).resolve()
        for source, target in deploy_checks.short_volumes(SERVICES[name])
        if deploy_checks.is_bind(source)
    }


def in_container(name: str, container_path: str) -> Path | None:
    """The repository file a service sees at ``container_path``, through its bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts(name).items():
        if wanted == PurePosixPath(target):
            return source
        if wanted.is_relative_to(target):
            return source / wanted.relative_to(target)
    return None


def container_port(service: str, published: int) -> int:
    for port in SERVICES[service].get("ports", []):
        parts = str(port).split(":")
        if int(parts[-1]) == published:
            return int(parts[-1])
    raise AssertionError(f"{service} does not publish {published}")


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    config = yaml.safe_load(deploy_checks.PROMETHEUS_FILE.read_text(encoding="utf-8"))
    targets = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for group in manager["static_configs"]
        for target in group["targets"]
    ]
    assert targets
    for target in targets:
        host, _, port = target.rpartition(":")
        assert host == "alertmanager" and container_port(host, int(port))


def test_alertmanager_loads_the_routing_file() -> None:
    argv = deploy_checks.service_argv(SERVICES["alertmanager"])
    config = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--config.file="))
    source = in_container("alertmanager", config)
    assert source == ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    assert source.is_file()


def test_grafana_loads_the_provisioning_and_the_generated_dashboard() -> None:
    assert in_container("grafana", "/etc/grafana/provisioning") == GRAFANA / "provisioning"
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "callpulse.yml").read_text(encoding="utf-8")
    )["providers"][0]
    dashboards = in_container("grafana", provider["options"]["path"])
    assert dashboards is not None and (dashboards / "callpulse.json").is_file(), dashboards
    home = deploy_checks.service_env(SERVICES["grafana"])[
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert in_container("grafana", home) == GRAFANA / "dashboards" / "callpulse.json"


def test_grafana_datasource_is_the_prometheus_service() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    url = urlsplit(next(d["url"] for d in datasources if d["type"] == "prometheus"))
    assert url.hostname == "prometheus" and url.port == container_port("prometheus", 9090)


def test_grafana_image_matches_the_sdk_that_generates_the_dashboard() -> None:
    # grafana-foundation-sdk versions read "<build>!<grafana version>".
    sdk = importlib.metadata.version("grafana-foundation-sdk").split("!")[-1]
    image = str(SERVICES["grafana"]["image"]).rsplit(":", 1)[1]
    assert image.split(".")[:2] == sdk.split(".")[:2], f"image {image}, SDK for Grafana {sdk}"


@pytest.mark.parametrize("name", deploy_checks.OWN_SERVICES)
def test_queue_file_is_mounted_where_the_setting_points(name: str) -> None:
    path = deploy_checks.service_env(SERVICES[name]).get("CALLPULSE_QUEUES_CONFIG")
    if path is None:
        return
    source = in_container(name, path)
    assert source is not None and source.is_file(), f"{name}: nothing mounted at {path}"


@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "grafana", "kafka"])
def test_operator_tools_listen_on_this_host_only(name: str) -> None:
    """Unauthenticated UIs: published on loopback; only the API (tokens) faces the LAN."""
    for port in SERVICES[name].get("ports", []):
        assert re.match(r"127\.0\.0\.1:\d+:\d+$", str(port)), f"{name}: {port}"


def test_every_service_restarts_except_the_simulator() -> None:
    policies: dict[str, Any] = {n: s.get("restart") for n, s in SERVICES.items()}
    assert all(p == "unless-stopped" for n, p in policies.items() if n != "simulator"), policies
