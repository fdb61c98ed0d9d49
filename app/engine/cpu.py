"""What the CPU can do, and the engine defaults that follow from it (docs/VLLM-CPU.md).

Machines differ: some have native bf16 (AVX-512 BF16, AMX), others only AVX2. Without native
bf16, vLLM's CPU backend falls back to torch's matmuls ("Failed to create oneDNN linear"), and
bf16 runs several times slower than fp32 (2-core AMD EPYC, AVX2 only: a 157-token prompt's
first token in about 4,000 ms in bf16, 650 ms in fp32). So the dtype is chosen from the CPU's
flags, logged at start, and the user can override it (`--engine-arg dtype=...`).
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

# Flags that matter for the engine's speed, in the order they are reported.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "bf16")
# x86 (avx512_bf16, amx_bf16) and Arm (bf16) names for bf16 done in hardware.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# Shared libraries vLLM's CPU guide asks to preload into the engine's processes.
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
TCMALLOC_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


@dataclass(frozen=True, slots=True)
class CpuInfo:
    model: str
    flags: frozenset[str]
    cores: int

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & NATIVE_BF16_FLAGS)

    def describe(self) -> str:
        """The model and the flags that matter, e.g. `AMD EPYC, 2 cores (avx2; no avx512f...)`."""
        has = [f for f in REPORTED_FLAGS if f in self.flags]
        lacks = [f for f in REPORTED_FLAGS[:4] if f not in self.flags]
        flags = ", ".join(has) if has else "none of " + "/".join(REPORTED_FLAGS)
        missing = f"; no {', '.join(lacks)}" if lacks else ""
        return f"{self.model}, {self.cores} cores ({flags}{missing})"


def read_cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU's model name and feature flags (Linux), or what `platform` knows elsewhere."""
    model, flags = "", set[str]()
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:  # x86 | Arm
            flags = set(value.split())
    return CpuInfo(model or platform.processor() or platform.machine() or "unknown CPU",
                   frozenset(flags), os.cpu_count() or 1)


def default_dtype(cpu: CpuInfo) -> str:
    """bf16 only where the CPU does it natively; fp32 elsewhere (five times faster there)."""
    return "bfloat16" if cpu.native_bf16 else "float32"


def dtype_reason(cpu: CpuInfo, dtype: str) -> str:
    if dtype == "bfloat16":
        return f"the CPU has native bf16 ({', '.join(sorted(cpu.flags & NATIVE_BF16_FLAGS))})"
    return "the CPU has no native bf16 (avx512_bf16, amx_bf16), where bf16 runs ~5x slower than fp32"


def preload_libraries(venv: Path = Path(sys.prefix)) -> list[str]:
    """tcmalloc (the system's) and Intel's OpenMP (shipped in the venv by vllm-cpu), when
    present: what vLLM's CPU guide asks to preload into the engine's processes."""
    found: list[str] = []
    tcmalloc = _find_tcmalloc()
    if tcmalloc is not None:
        found.append(tcmalloc)
    iomp = venv / "lib" / "libiomp5.so"
    if iomp.is_file():
        found.append(str(iomp))
    return found


def _find_tcmalloc() -> str | None:
    for directory in TCMALLOC_DIRS:
        for name in TCMALLOC_NAMES:
            path = Path(directory) / name
            if path.is_file():
                return str(path)
    found = ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")
    return found if found and Path(found).is_absolute() else None
