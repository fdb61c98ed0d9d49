"""The engine's configuration: vLLM's engine arguments from the settings, with defaults that
suit the machine the service finds itself on (docs/VLLM-CPU.md)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.engine.cpu import default_dtype, dtype_reason, preload_libraries, read_cpu_info
from app.engine.vllm import VllmEngine
from app.errors import ConfigError

log = logging.getLogger("streamchat.engine")

# Defaults for a machine without a GPU; every one can be overridden through engine_args.
# block_size 32 (the CPU backend's smallest; its default is 128): prefix-cache hits come in
# whole blocks, so finer blocks reuse more of a conversation's history from turn to turn
# (benchmarks multiturn: turn-10/turn-1 TTFT 2.9x with 128, 1.6x with 32) at no cost in
# tokens/s (bare engine, 16 chats: 300 with 128, 352 with 32 as shared system prompts hit).
# max_num_seqs 64 (vLLM's CPU default is 128): admission lets that many generations in at
# once. At 128, three times the request rate one core sustains was all let in (2-core AVX2, 45 s
# at 2.7 requests/s: none refused, first-token p99 36x the unloaded one); 64 streams are
# already ~1 token/s each there.
CPU_ENGINE_DEFAULTS: dict[str, Any] = {"enforce_eager": True, "gpu_memory_utilization": 0.5,
                                       "block_size": 32, "max_num_seqs": 64}
# Everywhere: the engine's own queue orders by priority, so that admission's fair order
# (app/admission/) holds inside it too, and a prefix warm-up goes after every generation.
ENGINE_DEFAULTS: dict[str, Any] = {"scheduling_policy": "priority"}
CPU_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1"}


def gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def build_engine_args(
    model: str, served_model_name: str, max_model_len: int | None, extra: Mapping[str, Any]
) -> Any:
    """`AsyncEngineArgs` from settings; unknown argument names fail with the list of valid ones."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(
            f"unknown vLLM engine argument(s) {', '.join(unknown)} in STREAMCHAT_ENGINE_ARGS "
            "(see `python -m vllm.entrypoints.openai.api_server --help` for the names, with _ for -)"
        )
    kwargs: dict[str, Any] = dict(ENGINE_DEFAULTS)
    if not gpu_available():
        kwargs.update(CPU_ENGINE_DEFAULTS)
        for key, value in CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        cpu = read_cpu_info()
        kwargs["dtype"] = default_dtype(cpu)
        if "dtype" in extra:
            log.info("engine: dtype %s (set by the engine arguments); CPU: %s", extra["dtype"],
                     cpu.describe())
        else:
            log.info("engine: dtype %s because %s; CPU: %s (override: --engine-arg dtype=...)",
                     kwargs["dtype"], dtype_reason(cpu, kwargs["dtype"]), cpu.describe())
        preload_engine_libraries()
    kwargs.update(extra)
    kwargs.update(model=model, served_model_name=[served_model_name], max_model_len=max_model_len)
    try:
        return AsyncEngineArgs(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid engine arguments: {exc}") from None


def preload_engine_libraries() -> None:
    """Have the engine's processes (spawned, so they read the environment at start) preload
    tcmalloc and Intel's OpenMP, as vLLM's CPU guide asks; a user's own LD_PRELOAD wins."""
    if "LD_PRELOAD" in os.environ:
        log.info("engine: LD_PRELOAD set by the user: %s", os.environ["LD_PRELOAD"])
        return
    libraries = preload_libraries()
    if libraries:
        os.environ["LD_PRELOAD"] = ":".join(libraries)
    names = ", ".join(Path(lib).name for lib in libraries) or "none found"
    log.info("engine: preloading %s into the engine (tcmalloc: apt-get install "
             "libtcmalloc-minimal4)", names)


def create_engine(
    model: str | None,
    served_model_name: str,
    max_model_len: int | None,
    engine_args: Mapping[str, Any],
    cache_dir: Path,
) -> VllmEngine:
    """The engine for these settings; the default model is converted first if needed."""
    if model is None:
        from app.engine.model import ensure_default_model

        model = str(ensure_default_model(cache_dir))
    elif model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise ConfigError(f"STREAMCHAT_MODEL: no model folder at {model}")
    args = build_engine_args(model, served_model_name, max_model_len, engine_args)
    return VllmEngine(args, served_model_name)
