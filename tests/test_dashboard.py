"""The Grafana dashboard queries only what /metrics exports; the GPU gauges exist only with a GPU."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app import gpu_metrics
from app.gpu_metrics import GPU_METRIC_NAMES, GpuMetrics
from app.metrics import ABORT_CAUSES, REJECT_REASONS

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "streamchat.json"
METRIC_NAME = re.compile(r"streamchat_[a-z_]+")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name (`..._bucket`, `..._total`, a gauge's own name) -> its (labels, value)s."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def queried_names(dashboard: dict[str, Any]) -> set[str]:
    """Every streamchat_* name in a PromQL `expr` of any panel (rows' nested panels included)."""
    names: set[str] = set()

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                names.update(METRIC_NAME.findall(target.get("expr", "")))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return names


def not_exported(queried: set[str], exported: set[str]) -> set[str]:
    # Exact sample names, as Prometheus stores them: a histogram is queried as `_bucket`, a
    # counter as `_total`; `streamchat_generated_tokens` without `_total` matches no series.
    return queried - exported - set(GPU_METRIC_NAMES)


def scrape_after_one_chat(client: TestClient) -> str:
    session = client.post("/v1/sessions", json={}).json()
    reply = client.post(f"/v1/sessions/{session['id']}/messages", json={"content": "hi"},
                        headers={"Accept": "text/event-stream"})
    assert reply.status_code == 200 and "event: done" in reply.text
    return client.get("/metrics").text


def test_dashboard_queries_only_metrics_the_service_exports(client: TestClient) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = queried_names(dashboard)
    exported = set(samples(scrape_after_one_chat(client)))
    assert not not_exported(queried, exported)
    # The panels the dashboard promises, by what they query.
    assert {"streamchat_time_to_first_token_seconds_bucket",
            "streamchat_inter_token_latency_seconds_bucket", "streamchat_generated_tokens_total",
            "streamchat_active_streams", "streamchat_engine_waiting_requests",
            "streamchat_engine_running_requests", "streamchat_requests_total",
            "streamchat_rejected_requests_total", "streamchat_aborted_streams_total",
            "streamchat_engine_kv_cache_usage_ratio", "streamchat_sessions",
            "streamchat_ttft_objective_requests_total", "streamchat_ttft_prediction_ratio_bucket",
            "streamchat_ttft_objective_seconds", "streamchat_prefill_tokens_per_second",
            *GPU_METRIC_NAMES} <= queried


def test_the_check_catches_a_name_the_service_does_not_export() -> None:
    exported = {"streamchat_generated_tokens_total"}
    assert not_exported({"streamchat_generated_tokens_total", *GPU_METRIC_NAMES}, exported) == set()
    assert not_exported({"streamchat_bogus_total"}, exported) == {"streamchat_bogus_total"}
    assert not_exported({"streamchat_generated_tokens"}, exported) == {"streamchat_generated_tokens"}


def test_dashboard_imports_anywhere() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_rejection_and_abort_series_show_at_zero_from_the_start() -> None:
    # A fresh process: in this one, other tests may already have counted some.
    code = ("from prometheus_client import generate_latest; import app.metrics; "
            "print(generate_latest().decode())")
    text = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, cwd=DASHBOARD.parents[2]).stdout
    found = samples(text)
    assert {labels["reason"]: value for labels, value in found["streamchat_rejected_requests_total"]
            } == dict.fromkeys(REJECT_REASONS, 0.0)
    assert {labels["cause"]: value for labels, value in found["streamchat_aborted_streams_total"]
            } == dict.fromkeys(ABORT_CAUSES, 0.0)


def test_rejection_and_abort_series_are_scraped(client: TestClient) -> None:
    found = samples(client.get("/metrics").text)
    assert {labels["reason"] for labels, _ in found["streamchat_rejected_requests_total"]} == set(
        REJECT_REASONS)
    assert {labels["cause"] for labels, _ in found["streamchat_aborted_streams_total"]} == set(
        ABORT_CAUSES)


class FakeNvml:
    """What GpuMetrics uses of pynvml: two devices, values set by the test."""

    def __init__(self, *, devices: int = 2, init_error: Exception | None = None) -> None:
        self.init_error = init_error
        self.utilization = {i: 0 for i in range(devices)}  # percent, as NVML reports it
        self.used = {i: 0 for i in range(devices)}
        self.total = {i: 80 * 2**30 for i in range(devices)}
        self.broken: set[int] = set()  # devices whose utilization read fails
        self.inits = 0
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.total)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        if handle in self.broken:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return SimpleNamespace(gpu=self.utilization[handle], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self.used[handle], total=self.total[handle],
                               free=self.total[handle] - self.used[handle])


def gpu_samples(collector: GpuMetrics) -> dict[str, dict[str, float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {name: {labels["gpu"]: value for labels, value in series}
            for name, series in samples(generate_latest(registry).decode()).items()}


def test_gpu_gauges_read_every_device_at_each_scrape() -> None:
    nvml = FakeNvml()
    collector = GpuMetrics.probe(nvml)
    assert collector is not None
    nvml.utilization, nvml.used = {0: 75, 1: 0}, {0: 3 * 2**30, 1: 2**20}
    first = gpu_samples(collector)
    assert first == {
        "streamchat_gpu_utilization_ratio": {"0": 0.75, "1": 0.0},
        "streamchat_gpu_memory_used_bytes": {"0": 3.0 * 2**30, "1": 2.0**20},
        "streamchat_gpu_memory_total_bytes": {"0": 80.0 * 2**30, "1": 80.0 * 2**30},
    }
    nvml.utilization[1] = 40
    assert gpu_samples(collector)["streamchat_gpu_utilization_ratio"] == {"0": 0.75, "1": 0.4}


def test_a_reading_a_device_refuses_is_left_out() -> None:
    nvml = FakeNvml()
    nvml.broken.add(1)
    collector = GpuMetrics.probe(nvml)
    assert collector is not None
    found = gpu_samples(collector)
    assert found["streamchat_gpu_utilization_ratio"] == {"0": 0.0}
    assert set(found["streamchat_gpu_memory_used_bytes"]) == {"0", "1"}


def test_no_gpu_means_no_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GpuMetrics.probe(FakeNvml(init_error=RuntimeError("NVML Shared Library Not Found"))) is None
    no_devices = FakeNvml(devices=0)
    assert GpuMetrics.probe(no_devices) is None
    assert no_devices.shutdowns == 1
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the package not installed
    assert GpuMetrics.probe() is None


def test_installed_probes_once_and_registers_only_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(gpu_metrics, "_probed", False)
    monkeypatch.setattr(gpu_metrics, "_collector", None)
    registry = CollectorRegistry()
    collector = gpu_metrics.installed(registry)
    assert collector is not None and gpu_metrics.installed(registry) is collector
    assert nvml.inits == 1
    assert set(samples(generate_latest(registry).decode())) == set(GPU_METRIC_NAMES)


def test_metrics_has_gpu_series_only_where_a_gpu_is(client: TestClient) -> None:
    text = client.get("/metrics").text
    if gpu_metrics.installed() is None:  # this machine: no pynvml, or no GPU
        assert "streamchat_gpu_" not in text
    else:
        assert set(GPU_METRIC_NAMES) <= set(samples(text))
