"""deploy/k8s/: every manifest valid against the Kubernetes API schemas (kubernetes-validate,
strict, offline), and the Deployments start, serve and stop the way the service needs: probes
on /health and /ready, a preStop and a grace period that leave room for the drain, resources,
a user that is not root, one GPU per replica on the GPU variant; the router in front of them
is deploy/nginx.conf itself, with its replicas found through DNS."""

from __future__ import annotations

import re
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
NGINX_CONF = REPO / "deploy" / "nginx.conf"
# What `kubectl apply -f deploy/k8s/` applies (not recursive), and the GPU variant beside it.
BASE = sorted(K8S.glob("*.yaml"))
GPU = sorted((K8S / "gpu").glob("*.yaml"))
OLDEST_SUPPORTED = "1.30.0"


# deploy/nginx.conf as the router (router.yaml) runs it: the same file but for the replicas,
# found through the headless Service's DNS instead of compose's names. Each piece is replaced
# exactly once; any other change to nginx.conf must be carried to router.yaml.
ROUTER_HEADER = """\
# deploy/nginx.conf as the router in front of the replicas runs it (deploy/k8s/router.yaml):
# the same file but for its first lines and the replicas, found through DNS (the headless
# Service streamchat-replicas). The nginx image renders it into /etc/nginx/nginx.conf at start
# (envsubst of POD_NAMESPACE and NGINX_LOCAL_RESOLVERS only).

"""
ROUTER_SERVERS = """\
        # The replicas: one server per ready pod, from the SRV records of the headless
        # Service's `http` port, looked up again every 5 s (nginx >= 1.27.3: `resolve` in a
        # zone). SRV (`service=`) and not the Service's name: each pod gets a name of its own
        # (its SRV target), hence its own points on the ring; under one name every pod would
        # share the same points and the hash would be round robin among them.
        zone streamchat 256k;
        resolver ${NGINX_LOCAL_RESOLVERS} valid=5s ipv6=off;
        server streamchat-replicas.${POD_NAMESPACE}.svc.cluster.local service=http resolve
               max_fails=2 fail_timeout=10s;
"""


def router_conf(conf: str) -> str:
    header = conf[:conf.index("\nworker_processes")]
    servers = "".join(line for line in conf.splitlines(keepends=True)
                      if line.strip().startswith("server streamchat-"))
    rewrites = [
        (header + "\n", ROUTER_HEADER),
        ("worker_processes auto;", "# `auto` counts the node's CPUs, not the pod's (router.yaml: 1 CPU).\n"
                                   "worker_processes 1;"),
        ("        # The ring is built from the names written here, so every nginx agrees on it.\n",
         "        # The ring is built from the replicas' names (below), so every router agrees on it.\n"),
        (servers, ROUTER_SERVERS),
    ]
    for old, new in rewrites:
        assert old and conf.count(old) == 1, f"{NGINX_CONF} should have {old!r} exactly once"
        conf = conf.replace(old, new)
    return conf


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
    assert kinds == [("ConfigMap", "streamchat-router"), ("Deployment", "redis"),
                     ("Deployment", "streamchat"), ("Deployment", "streamchat-router"),
                     ("PodDisruptionBudget", "streamchat"),
                     ("PodDisruptionBudget", "streamchat-router"), ("Service", "redis"),
                     ("Service", "streamchat"), ("Service", "streamchat-replicas")]
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
    service = find(base, "Service", "streamchat-replicas")
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
    # kube-proxy's ClientIP affinity would know the address only: the routers key by session.
    assert "sessionAffinity" not in service["spec"]


def router() -> tuple[str, dict[str, Any]]:
    """The router's nginx.conf template, and its Deployment."""
    base = documents(BASE)
    return (find(base, "ConfigMap", "streamchat-router")["data"]["nginx.conf.template"],
            find(base, "Deployment", "streamchat-router"))


def test_the_router_runs_deploy_nginx_conf() -> None:
    # One owner for the affinity key, the stream settings and the failover: deploy/nginx.conf.
    template, _ = router()
    assert template == router_conf(NGINX_CONF.read_text())


def test_the_router_finds_each_ready_replica_by_name() -> None:
    base = documents(BASE)
    template, deployment = router()
    headless = find(base, "Service", "streamchat-replicas")
    assert headless["spec"]["clusterIP"] == "None"  # DNS names the pods, not one address
    assert "publishNotReadyAddresses" not in headless["spec"]  # a draining one leaves the ring
    # The template's SRV lookup is the headless Service's port, in the pod's own namespace.
    found = re.search(r"server (\S+) service=(\S+) resolve", template)
    assert found is not None
    assert found.group(1) == "streamchat-replicas.${POD_NAMESPACE}.svc.cluster.local"
    assert found.group(2) in {p["name"] for p in headless["spec"]["ports"]}
    for labels in (d["spec"]["template"]["metadata"]["labels"] for d in deployments().values()):
        assert headless["spec"]["selector"].items() <= labels.items()
    assert "hash $streamchat_session_key consistent;" in template
    # `resolve` needs nginx >= 1.27.3; the image's tag says at least which minor version.
    [nginx] = deployment["spec"]["template"]["spec"]["containers"]
    version = tuple(int(x) for x in re.findall(r"\d+", nginx["image"].split(":")[1])[:2])
    assert version >= (1, 28), nginx["image"]


def test_the_image_renders_only_the_routers_own_variables() -> None:
    template, deployment = router()
    [nginx] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in nginx["env"]}
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"]["value"] == "/etc/nginx"  # the whole nginx.conf
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["NGINX_ENTRYPOINT_LOCAL_RESOLVERS"]["value"] == "1"
    # envsubst replaces $NAME as well as ${NAME}: only names the filter lets through are
    # replaced, and they must be exactly the template's ${...}, never one of nginx's $variables.
    rendered = {name for name in re.findall(r"\$\{?(\w+)", template)
                if re.search(env["NGINX_ENVSUBST_FILTER"]["value"], name)}
    assert rendered == set(re.findall(r"\$\{(\w+)\}", template)) == {
        "POD_NAMESPACE", "NGINX_LOCAL_RESOLVERS"}
    [mount] = nginx["volumeMounts"]
    assert mount["mountPath"] == "/etc/nginx/templates"


def test_the_service_is_the_routers() -> None:
    base = documents(BASE)
    template, deployment = router()
    service = find(base, "Service", "streamchat")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    for replica in deployments().values():  # ...and never a replica directly
        assert not service["spec"]["selector"].items() <= replica["spec"]["template"][
            "metadata"]["labels"].items()
    [nginx] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in nginx["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports.keys()
    assert f"listen {ports['http']};" in template


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
