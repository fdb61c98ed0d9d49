"""deploy/k8s/: every manifest valid against the Kubernetes API schemas (kubernetes-validate,
strict, offline), and the Deployments start, serve and stop the way the service needs: probes
on /health and /ready, a preStop and a grace period that leave room for the drain, resources,
a user that is not root, one GPU per replica on the GPU variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from app.server import ABORT_GRACE_S, GRACEFUL_SHUTDOWN_S
from app.settings import Settings, from_env
from tests.dockerfile_parse import parse

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
# What `kubectl apply -f deploy/k8s/` applies (not recursive), and the GPU variant beside it.
BASE = sorted(K8S.glob("*.yaml"))
GPU = sorted((K8S / "gpu").glob("*.yaml"))
OLDEST_SUPPORTED = "1.30.0"


def documents(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def deployments() -> dict[str, dict[str, Any]]:
    """The streamchat Deployment by target: cpu from the base folder, gpu from gpu/."""
    return {"cpu": find(documents(BASE), "Deployment", "streamchat"),
            "gpu": find(documents(GPU), "Deployment", "streamchat")}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def settings(deployment: dict[str, Any], target: str) -> Settings:
    """The container's settings: the image's environment, then the manifest's."""
    env = {**parse(REPO / "Dockerfile").env(target),
           **{e["name"]: e["value"] for e in container(deployment).get("env", []) if "value" in e}}
    return from_env({k: v for k, v in env.items() if k.startswith("STREAMCHAT_")})


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("path", BASE + GPU, ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_valid(path: Path, version: str) -> None:
    docs = documents([path])
    assert docs, f"{path} holds no object"
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises with the field's path


def test_the_folder_is_the_cpu_stack_and_gpu_replaces_its_deployment() -> None:
    base = documents(BASE)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in base)
    assert kinds == [("Deployment", "redis"), ("Deployment", "streamchat"),
                     ("PodDisruptionBudget", "streamchat"), ("Service", "redis"),
                     ("Service", "streamchat")]
    [gpu] = documents(GPU)
    cpu = find(base, "Deployment", "streamchat")
    assert (gpu["kind"], gpu["metadata"]["name"]) == ("Deployment", "streamchat")
    assert gpu["spec"]["selector"] == cpu["spec"]["selector"]


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_image_and_user_match_the_dockerfile_target(target: str) -> None:
    deployment = deployments()[target]
    assert container(deployment)["image"] == f"streamchat:{target}"
    user = parse(REPO / "Dockerfile").last(target, "USER")
    assert user is not None
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert str(pod["runAsUser"]) == user.args.split(":")[0]
    assert container(deployment)["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_probes_ask_health_and_ready_on_the_served_port(target: str) -> None:
    deployment = deployments()[target]
    main = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["http"] == settings(deployment, target).port
    paths = {probe: (main[probe]["httpGet"]["path"], main[probe]["httpGet"]["port"])
             for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {"startupProbe": ("/ready", "http"), "livenessProbe": ("/health", "http"),
                     "readinessProbe": ("/ready", "http")}
    # The engine takes a while to load (a GPU model is fetched first): minutes, not seconds.
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_the_grace_period_outlasts_prestop_and_the_drain(target: str) -> None:
    deployment = deployments()[target]
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop >= 5  # endpoints forget the pod before SIGTERM starts the drain
    drain = settings(deployment, target).drain_timeout_s + ABORT_GRACE_S + GRACEFUL_SHUTDOWN_S
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pre_stop + drain


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_resources_are_requested_and_limited(target: str) -> None:
    resources = container(deployments()[target])["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    gpus = resources["limits"].get("nvidia.com/gpu")
    assert gpus == (1 if target == "gpu" else None)


def test_service_and_budget_select_the_replicas_of_either_deployment() -> None:
    base = documents(BASE)
    service = find(base, "Service", "streamchat")
    budget = find(base, "PodDisruptionBudget", "streamchat")
    for target, deployment in deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items(), target
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items(), target
        ports = {p["name"] for p in container(deployment)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
        # A drain always leaves a replica serving, and one can always be evicted.
        assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert "sessionAffinity" not in service["spec"]  # sessions are shared through Redis


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_replicas_share_the_redis_of_the_folder(target: str) -> None:
    base = documents(BASE)
    deployment = deployments()[target]
    url = urlsplit(settings(deployment, target).redis_url or "")
    service = find(base, "Service", url.hostname or "")
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    redis = find(base, "Deployment", "redis")
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    assert settings(deployment, target).metrics_public  # scraped per pod, without a key
