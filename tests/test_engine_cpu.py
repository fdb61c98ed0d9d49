"""What the CPU can do and the engine defaults that follow (app/engine/cpu.py, and how
app/engine/config.py applies them)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from app.engine import config
from app.engine.cpu import (
    CpuInfo,
    default_dtype,
    dtype_reason,
    preload_libraries,
    read_cpu_info,
)

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 avx avx2 fma
"""
AVX512_BF16 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile
"""
ARM_BF16 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm
"""


def cpu(tmp_path: Path, text: str) -> CpuInfo:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return read_cpu_info(path)


def test_an_avx2_only_cpu_gets_fp32(tmp_path: Path) -> None:
    info = cpu(tmp_path, AVX2_ONLY)
    assert info.model == "AMD EPYC" and not info.native_bf16
    assert default_dtype(info) == "float32"
    assert "no native bf16" in dtype_reason(info, "float32")
    assert info.describe().startswith("AMD EPYC, ")
    assert "(avx2; no avx512f, avx512_bf16, amx_bf16)" in info.describe()


def test_native_bf16_gets_bf16_on_x86_and_arm(tmp_path: Path) -> None:
    xeon = cpu(tmp_path, AVX512_BF16)
    assert xeon.native_bf16 and default_dtype(xeon) == "bfloat16"
    assert "amx_bf16" in dtype_reason(xeon, "bfloat16")
    arm = cpu(tmp_path, ARM_BF16)
    assert arm.native_bf16 and default_dtype(arm) == "bfloat16"


def test_no_cpuinfo_is_not_an_error(tmp_path: Path) -> None:
    info = read_cpu_info(tmp_path / "missing")
    assert info.model and default_dtype(info) == "float32"


def test_preload_finds_intel_openmp_in_the_venv(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libiomp5.so").write_bytes(b"")
    assert str(tmp_path / "lib" / "libiomp5.so") in preload_libraries(tmp_path)
    assert not any("libiomp5" in lib for lib in preload_libraries(tmp_path / "elsewhere"))


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(config, "gpu_available", lambda: False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    path = tmp_path / "cpuinfo"
    path.write_text(AVX2_ONLY)
    monkeypatch.setattr(config, "read_cpu_info", lambda: read_cpu_info(path))
    return path


def test_the_engine_runs_fp32_on_a_cpu_without_bf16_and_says_why(
        no_gpu: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="streamchat.engine"):
        args = config.build_engine_args("/m", "m", None, {})
    assert args.dtype == "float32"
    assert "dtype float32 because the CPU has no native bf16" in caplog.text
    assert "AMD EPYC" in caplog.text


def test_the_user_overrides_the_dtype_and_the_scheduling(no_gpu: Path) -> None:
    args = config.build_engine_args("/m", "m", None, {"dtype": "bfloat16",
                                                      "max_num_batched_tokens": 2048,
                                                      "scheduling_policy": "fcfs"})
    assert args.dtype == "bfloat16"
    assert args.max_num_batched_tokens == 2048 and args.scheduling_policy == "fcfs"


def test_ttft_first_scheduling_is_the_default(no_gpu: Path) -> None:
    """The engine orders its queue by priority; its prefill budget stays vLLM's own, as the
    admission gate paces prompts (README: measured against 512-token chunks)."""
    args = config.build_engine_args("/m", "m", None, {})
    assert args.scheduling_policy == "priority"
    assert args.max_num_batched_tokens is None


def test_the_engine_preloads_what_it_finds_unless_the_user_set_ld_preload(
        no_gpu: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "preload_libraries", lambda: ["/x/libtcmalloc_minimal.so.4"])
    config.build_engine_args("/m", "m", None, {})
    assert os.environ["LD_PRELOAD"] == "/x/libtcmalloc_minimal.so.4"
    monkeypatch.setenv("LD_PRELOAD", "/mine.so")
    config.build_engine_args("/m", "m", None, {})
    assert os.environ["LD_PRELOAD"] == "/mine.so"
