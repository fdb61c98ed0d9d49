"""GPU gauges for /metrics, read through NVML, only where a GPU is really there.

With `nvidia-ml-py` (import name `pynvml`, the `gpu` extra) importable, `nvmlInit()` succeeding
and at least one device, `installed()` registers a `GpuMetrics` collector in the default
registry; it reads every device each time /metrics is collected. Anywhere else (the CPU build,
a machine without a driver) nothing is registered, so no `streamchat_gpu_*` name is exported:
an absent series says "no GPU", a zero would lie. `probe(nvml=...)` takes a fake module, so a
test can show the gauges without a GPU and without touching the default registry."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

UTILIZATION = "streamchat_gpu_utilization_ratio"
MEMORY_USED = "streamchat_gpu_memory_used_bytes"
MEMORY_TOTAL = "streamchat_gpu_memory_total_bytes"
# Every name this module may export (the dashboard test accepts these without a GPU).
GPU_METRIC_NAMES = (UTILIZATION, MEMORY_USED, MEMORY_TOTAL)

_HELP = {
    UTILIZATION: "Fraction of the last sample period the GPU was busy (NVML utilization).",
    MEMORY_USED: "GPU memory in use, bytes.",
    MEMORY_TOTAL: "GPU memory installed, bytes.",
}


class GpuMetrics(Collector):
    """A collector over NVML device handles; one series per device, labelled `gpu` (its index)."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._failed: set[tuple[int, str]] = set()  # (device, reading) already logged

    @classmethod
    def probe(cls, nvml: Any = None) -> GpuMetrics | None:
        """A collector when NVML starts and sees a device, else None (logged once, at debug)."""
        if nvml is None:
            try:
                import pynvml as nvml  # type: ignore[no-redef]
            except ImportError:
                log.debug("no GPU metrics: nvidia-ml-py (pynvml) is not installed")
                return None
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            log.debug("no GPU metrics: nvmlInit failed: %s", exc)
            return None
        try:
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        except Exception as exc:
            log.debug("no GPU metrics: listing devices failed: %s", exc)
            handles = []
        if not handles:
            log.debug("no GPU metrics: NVML sees no device")
            nvml.nvmlShutdown()
            return None
        return cls(nvml, handles)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Names only: registering must not read the devices (and checks for clashes).
        return [GaugeMetricFamily(name, _HELP[name], labels=["gpu"]) for name in GPU_METRIC_NAMES]

    def update(self) -> dict[str, GaugeMetricFamily]:
        """Read every device now. A reading a device refuses (utilization on a MIG slice,
        a GPU fallen off the bus) is left out rather than failing the whole scrape."""
        families = {name: GaugeMetricFamily(name, _HELP[name], labels=["gpu"])
                    for name in GPU_METRIC_NAMES}
        for index, handle in enumerate(self._handles):
            gpu = str(index)
            utilization = self._read(index, "utilization", self._nvml.nvmlDeviceGetUtilizationRates,
                                     handle)
            if utilization is not None:
                families[UTILIZATION].add_metric([gpu], utilization.gpu / 100.0)  # NVML: percent
            memory = self._read(index, "memory", self._nvml.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                families[MEMORY_USED].add_metric([gpu], float(memory.used))
                families[MEMORY_TOTAL].add_metric([gpu], float(memory.total))
        return families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        # Read at collect time: the values are as fresh as the scrape.
        return list(self.update().values())

    def _read(self, index: int, what: str, call: Any, handle: Any) -> Any:
        try:
            return call(handle)
        except Exception as exc:
            if (index, what) not in self._failed:  # once per device and reading, not per scrape
                self._failed.add((index, what))
                log.warning("GPU %d: reading %s failed: %s", index, what, exc)
            return None


_probed = False
_collector: GpuMetrics | None = None


def installed(registry: CollectorRegistry = REGISTRY) -> GpuMetrics | None:
    """Probe once, on first use (the first scrape), and register the collector if a GPU is
    there; later calls return the cached answer. Lazy, so importing the app never starts NVML."""
    global _probed, _collector
    if not _probed:
        _probed = True
        _collector = GpuMetrics.probe()
        if _collector is not None:
            registry.register(_collector)
    return _collector
